"""The helper scripts of `tma_ops.releases`, run on the environment with its stdlib-only Python.

Every script gets one JSON argument (`root`, `links`: shared path -> relative link target, and
the operation's own fields), fails with exit code 3 and one line on stderr naming the path, and
prints JSON when it has something to tell. PRELUDE comes first in every script.
"""

from __future__ import annotations

MARKS_FILE = ".tma-releases.json"
ADOPT_SUFFIX = ".tma-adopt"

# `python -c BOOT SCRIPT ARGS`: executors quote the first items of argv in their messages, so the
# long script goes fourth and messages stay one line.
BOOT = "import sys; exec(sys.argv.pop(1))"


PRELUDE = (
    f"MARKS = {MARKS_FILE!r}\nADOPT_SUFFIX = {ADOPT_SUFFIX!r}\n"
    + r"""
import json, os, shutil, subprocess, sys
args = json.loads(sys.argv[1])
root = args["root"]
releases = os.path.join(root, "releases")
current = os.path.join(root, "current")

def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(3)

def current_target(base=root):
    path = os.path.join(base, "current")
    return os.readlink(path) if os.path.islink(path) else None

def release_dir(rid, base=root):
    path = os.path.join(base, "releases", rid)
    if os.path.islink(path) or not os.path.isdir(path):
        fail("release " + rid + " has no directory " + path)
    return path

def load_marks(base=root):
    path = os.path.join(base, MARKS)
    try:
        with open(path, encoding="utf-8") as handle:
            marks = json.load(handle).get("releases")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        fail("cannot read " + path + ": " + str(exc))
    if not isinstance(marks, dict):
        fail(path + ': expected {"releases": {<id>: {...}}}')
    return marks

def save_marks(marks, base=root):
    path = os.path.join(base, MARKS)
    with open(path + ".partial", "w", encoding="utf-8") as handle:
        json.dump({"releases": marks}, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".partial", path)

def sync_dir(path):
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

def put_link(target, path):
    # A temporary link renamed over the old name: readers see the old link or the new one.
    if os.path.lexists(path + ".tma-new"):
        os.unlink(path + ".tma-new")
    os.symlink(target, path + ".tma-new")
    os.replace(path + ".tma-new", path)

def link_shared(release, base=root):
    for path, target in args["links"].items():
        where, shared = os.path.join(release, path), os.path.join(base, "shared", path)
        if not os.path.lexists(shared):
            fail("shared path " + path + " is missing: " + shared)
        if os.path.islink(where) and os.readlink(where) == target:
            continue
        if os.path.isdir(where) and not os.path.islink(where):
            shutil.rmtree(where)  # a real copy in a new release: the shared one is canonical
        os.makedirs(os.path.dirname(where), exist_ok=True)
        put_link(target, where)
"""
)

STATE = """
names = []
if os.path.isdir(releases):
    for name in os.listdir(releases):
        path = os.path.join(releases, name)
        if os.path.isdir(path) and not os.path.islink(path):
            names.append(name)
print(json.dumps({"current": current_target(), "dirs": names, "marks": load_marks()}))
"""

SWITCH = """
release_dir(args["id"])
put_link("releases/" + args["id"], current)
sync_dir(root)
"""

MARK = """
release_dir(args["id"])
marks = load_marks()
marks[args["id"]] = {**args["entry"], **marks.get(args["id"], {}), **args["changes"]}
save_marks(marks)
"""

PREPARE = """
rid, live = args["id"], current_target() or ""
if not live.startswith("releases/"):
    fail(current + " is not a link into releases/: adopt the tree first")
live_id = live[len("releases/"):]
source, destination = release_dir(live_id), os.path.join(releases, rid)
if rid == live_id:
    fail("release " + rid + " is the current release: prepare a new id")
marks = load_marks()
status = marks.get(rid, {}).get("status")
if os.path.lexists(destination):
    if status in ("good", "bad"):
        fail("release " + rid + " already exists (" + status + "): prepare a new id")
    shutil.rmtree(destination)  # what an interrupted prepare left
copy = subprocess.run(["cp", "-a", "--", source, destination], capture_output=True, text=True)
if copy.returncode:
    shutil.rmtree(destination, ignore_errors=True)
    fail("cannot copy " + source + ": " + (copy.stderr.strip().splitlines() or ["cp failed"])[-1])
link_shared(destination)
marks[rid] = dict(args["entry"], previous=live_id)
save_marks(marks)
"""

# An adoption that was cut short is finished under the id it began with, and a finished one is
# left as it is, whatever id the rerun asks for: the caller learns the id from the printed JSON.
ADOPT = """
stage = root + ADOPT_SUFFIX
begun = os.listdir(os.path.join(stage, "releases")) if os.path.isdir(stage + "/releases") else []
if len(begun) > 1:
    fail(stage + " holds several releases (" + ", ".join(sorted(begun)) + "): keep one and rerun")
rid = begun[0] if begun else args["id"]
staged = os.path.join(stage, "releases", rid)

def adopted():
    # the id of a finished adoption of root (its only release, current and marked), else None
    target = current_target()
    if os.path.lexists(stage) or target is None:
        return None
    done = target[len("releases/"):] if target.startswith("releases/") else ""
    if done and done in load_marks() and (done == rid or os.listdir(releases) == [done]):
        return done
    fail(root + " already holds releases (current -> " + target + "): nothing to adopt")

def stage_tree():
    if not os.path.lexists(staged):
        if os.path.islink(root) or not os.path.isdir(root):
            fail(root + " is not a directory: nothing to adopt")
        for path in args["links"]:
            if not os.path.lexists(os.path.join(root, path)):
                fail("shared path " + path + " not found in " + root)
        os.makedirs(os.path.join(stage, "releases"), exist_ok=True)
        os.rename(root, staged)
    for path, target in args["links"].items():
        inside, shared = os.path.join(staged, path), os.path.join(stage, "shared", path)
        if os.path.islink(inside) and os.readlink(inside) == target:
            continue
        if os.path.lexists(inside):
            if os.path.lexists(shared):
                fail("both " + inside + " and " + shared + " exist: keep one and rerun")
            os.makedirs(os.path.dirname(shared), exist_ok=True)
            os.rename(inside, shared)
    link_shared(staged, stage)

def finish():
    release_dir(rid, stage)
    marks = load_marks(stage)
    marks.setdefault(rid, args["entry"])
    save_marks(marks, stage)
    put_link("releases/" + rid, os.path.join(stage, "current"))
    if os.path.lexists(root):
        fail(root + " appeared beside " + stage + " during the adoption: move it away and rerun")
    os.rename(stage, root)
    sync_dir(os.path.dirname(root))

done = adopted()
if done:
    rid = done
elif args["phase"] == "stage":
    stage_tree()
else:
    finish()
print(json.dumps({"id": rid}))
"""

PRUNE = """
marks, live = load_marks(), current_target()
for rid in args["ids"]:
    if live == "releases/" + rid:
        fail("release " + rid + " is the current release: not pruned")
    path = os.path.join(releases, rid)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    marks.pop(rid, None)
save_marks(marks)
"""

MAINTENANCE = """
paths = [os.path.join(release_dir(rid), args["name"]) for rid in args["ids"]]
for path in paths:
    if args["on"]:
        with open(path + ".partial", "w", encoding="utf-8") as handle:
            handle.write(args["content"])
        os.replace(path + ".partial", path)
    elif os.path.lexists(path):
        os.unlink(path)
"""
