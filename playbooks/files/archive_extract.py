"""Extract a component archive (.zip or .tar.gz) into a fresh directory, refusing unsafe members.

Usage, on the environment (playbooks/archive-update.yml runs it with the `script` module):

    archive_extract.py ARCHIVE DEST

DEST is removed first, so a half-extracted copy left by an interrupted run never survives. Every
member is checked before anything is written: absolute paths, drive letters, '..' parts, links
pointing outside and special files (devices, FIFOs) are refused ("zip slip"). On Python 3.12+
(and backports) tarfile's "data" filter is applied as well. Errors are one line on stderr with
exit code 1, and DEST is removed again.

Runs on the environment's Python (3.8 or newer, as ansible-core needs there): standard library only.
"""

import os
import shutil
import sys
import tarfile
import zipfile


class UnsafeArchive(Exception):
    pass


def refuse_unsafe(path, what="member"):
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
        raise UnsafeArchive(f"unsafe {what} path in archive: {path}")


def tar_members(tf):
    members = tf.getmembers()
    for member in members:
        refuse_unsafe(member.name)
        if member.issym() or member.islnk():
            refuse_unsafe(member.linkname, "link target")
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchive("unsupported member type in archive: " + member.name)
    return members


def extract_zip(archive, dest):
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            refuse_unsafe(name)
        os.makedirs(dest)
        zf.extractall(dest)


def extract_tar(archive, dest):
    with tarfile.open(archive, "r:gz") as tf:
        members = tar_members(tf)
        os.makedirs(dest)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:
            tf.extractall(dest, members=members)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: archive_extract.py ARCHIVE DEST")
    archive, dest = argv[1], argv[2]
    shutil.rmtree(dest, ignore_errors=True)
    try:
        if archive.endswith(".zip"):
            extract_zip(archive, dest)
        else:
            extract_tar(archive, dest)
    except UnsafeArchive as exc:
        shutil.rmtree(dest, ignore_errors=True)
        sys.exit(str(exc))
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        sys.exit(f"cannot extract the archive: {exc}")


if __name__ == "__main__":
    main(sys.argv)
