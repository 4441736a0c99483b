"""GNU tar's state file: the directory inodes it knows, and what it will take for renames."""

from __future__ import annotations

import pytest

from tma_ops.files_archive import directory_ids, renamed_directories

pytestmark = pytest.mark.unit


def state(*records: tuple[str, str, str, list[str]]) -> bytes:
    """A format-2 state file: header, dump time, then (device, inode, name, entries) records."""
    out = b"GNU tar-1.34-2\n1795898599\x00446293710\x00"
    for device, inode, name, entries in records:
        out += b"\x00".join(x.encode() for x in ["0", "1795898599", "4403", device, inode, name])
        out += b"\x00" + b"".join(e.encode() + b"\x00" for e in entries) + b"\x00\x00"
    return out


def test_directory_ids_reads_every_record_with_or_without_entries() -> None:
    data = state(
        ("65024", "10", "./a", ["Db", "Yf.txt"]),
        ("65024", "11", ".", ["Da"]),
        ("65024", "12", "./a/b", []),
    )
    assert directory_ids(data) == {
        (b"65024", b"10"): b"./a",
        (b"65024", b"11"): b".",
        (b"65024", b"12"): b"./a/b",
    }
    assert directory_ids(b"GNU tar-1.34-2\n1\x002\x00") == {}


CASES = {
    "nothing moved": ([("1", "10", "./cache")], [("1", "10", "./cache")], []),
    "new inode, same name": ([("1", "10", "./cache")], [("1", "20", "./cache")], []),
    "wiped and rebuilt with a freed inode": (
        [("1", "10", "./cache"), ("1", "11", "./cache/a"), ("1", "12", "./cache/b")],
        [("1", "10", "./cache"), ("1", "11", "./cache/b")],
        [b"./cache/b"],
    ),
    "same inode on another device": ([("1", "10", "./a")], [("2", "10", "./b")], []),
    "a real rename": ([("1", "10", "./old")], [("1", "10", "./new")], [b"./new"]),
}


@pytest.mark.parametrize(("before", "now", "renamed"), CASES.values(), ids=CASES.keys())
def test_renamed_directories(
    before: list[tuple[str, str, str]], now: list[tuple[str, str, str]], renamed: list[bytes]
) -> None:
    state_file = state(*[(d, i, n, []) for d, i, n in before])
    current = {(d.encode(), i.encode()): n.encode() for d, i, n in now}
    assert renamed_directories(state_file, current) == renamed
