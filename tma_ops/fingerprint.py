"""Content fingerprints of an environment, to prove it equals a snapshot or did not change."""

from __future__ import annotations

from dataclasses import dataclass

from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.executors import Executor, open_executor

# Runs on the environment: one line per entry (path, type, mode, content digest or link target),
# hashed in path order. mtimes are left out: a restore keeps contents, modes and layout.
TREE_SCRIPT = r"""
import hashlib, os, stat, sys
root = sys.argv[1]
total = hashlib.sha256()
for base, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        path = os.path.join(base, name)
        info = os.lstat(path)
        rel = os.path.relpath(path, root)
        if stat.S_ISLNK(info.st_mode):
            what = "l " + os.readlink(path)
        elif stat.S_ISDIR(info.st_mode):
            what = "d"
        else:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            what = "f " + digest.hexdigest()
        line = "%s\0%o\0%s\n" % (rel, stat.S_IMODE(info.st_mode), what)
        total.update(line.encode("utf-8", "surrogateescape"))
print(total.hexdigest())
"""


@dataclass(frozen=True)
class Fingerprint:
    files: str
    database: str


def tree_fingerprint(executor: Executor, root: str) -> str:
    return executor.run([executor.python, "-c", TREE_SCRIPT, root]).out.strip()


def environment_fingerprint(site: Site, env_name: str) -> Fingerprint:
    env = site.environment(env_name)
    database, db_executor = database_of(env)
    return Fingerprint(
        tree_fingerprint(open_executor(env.executor), env.root), database.fingerprint(db_executor)
    )
