"""The pure parts of the host check: the syntax of its items, the output of the host's commands it
reads, the verdicts and their wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tma_ops.checks.host import (
    DiskUsage,
    MinFree,
    Outcome,
    PortSpec,
    ProcessEntry,
    days_left,
    describe_shortfall,
    format_bytes,
    listening_serves,
    parse_df,
    parse_min_free,
    parse_port_spec,
    parse_proc_stat,
    summarize,
)
from tma_ops.model_checks import HostCheck

pytestmark = pytest.mark.unit

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", MinFree(bytes=2 * GIB)),
        ("500M", MinFree(bytes=500 * MIB)),
        ("1.5T", MinFree(bytes=3 * TIB // 2)),
        ("64K", MinFree(bytes=64 * KIB)),
        ("2GiB", MinFree(bytes=2 * GIB)),
        ("2gb", MinFree(bytes=2 * GIB)),
        (" 2 G ", MinFree(bytes=2 * GIB)),
        ("10%", MinFree(percent=10)),
        ("0.5%", MinFree(percent=0.5)),
        ("100%", MinFree(percent=100)),
    ],
)
def test_minimum_free_space_is_parsed(text: str, expected: MinFree) -> None:
    assert parse_min_free(text) == expected


@pytest.mark.parametrize("text", ["2", "2 gigs", "G", "", "-1G", "2P", "0%", "101%", "10 %%"])
def test_a_minimum_that_is_not_a_size_or_share_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a minimum free space like 2G, 500M or 10%"):
        parse_min_free(text)


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (KIB, "1 KiB"),
        (2 * GIB, "2 GiB"),
        (2 * GIB - 1, "1.9 GiB"),  # rounded down: never shows more than there is
        (GIB + GIB // 4, "1.2 GiB"),
        (500 * MIB, "500 MiB"),
        (100000 * GIB, "97.6 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units_rounded_down(count: int, shown: str) -> None:
    assert format_bytes(count) == shown


DF_ROOT = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 31986680  74404232      31% /
"""
DF_SPACES = """Filesystem                1024-blocks  Used Available Capacity Mounted on
//nas/share with spaces      1000000 900000    100000      90% /mnt/my share
"""
DF_PROC = """Filesystem     1024-blocks     Used Available Capacity Mounted on
proc                     0        0         0        - /proc
"""


@pytest.mark.parametrize(
    ("output", "free", "used"),
    [
        (DF_ROOT, 74404232 * KIB, 31986680 * KIB),
        (DF_SPACES, 100000 * KIB, 900000 * KIB),
        (DF_PROC, 0, 0),
    ],
)
def test_df_output_is_read(output: str, free: int, used: int) -> None:
    assert parse_df(output) == DiskUsage(free=free, used=used)


@pytest.mark.parametrize(
    "output", ["", "Filesystem 1024-blocks Used Available Capacity Mounted on\n", "df: oops\n"]
)
def test_unexpected_df_output_is_an_error_quoting_it(output: str) -> None:
    with pytest.raises(ValueError, match="unexpected df output"):
        parse_df(output)


@pytest.mark.parametrize(
    ("free", "used", "minimum", "shortfall"),
    [
        (3 * GIB, GIB, "2G", None),
        (2 * GIB, GIB, "2G", None),  # exactly the minimum is enough
        (GIB + GIB // 4, GIB, "2G", "1.2 GiB free < 2 GiB"),
        (2 * GIB - 1, GIB, "2G", "1.9 GiB free < 2 GiB"),
        (100 * MIB, 0, "500M", "100 MiB free < 500 MiB"),
        (10, 90, "10%", None),
        (9, 91, "10%", "9.0% free < 10%"),
        (999, 9001, "10%", "9.9% free < 10%"),  # 9.99% is not shown as 10.0%
        (0, 0, "1%", "0.0% free < 1%"),
        (0, 0, "1K", "0 B free < 1 KiB"),
    ],
)
def test_free_space_is_compared_with_the_minimum(
    free: int, used: int, minimum: str, shortfall: str | None
) -> None:
    usage = DiskUsage(free=free, used=used)
    assert describe_shortfall(usage, parse_min_free(minimum)) == shortfall


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("not_after", "days"),
    [
        (NOW + timedelta(days=5), 5),
        (NOW + timedelta(days=4, hours=23), 4),
        (NOW + timedelta(days=90, seconds=1), 90),
        (NOW + timedelta(minutes=1), 0),
        (NOW, 0),
        (NOW - timedelta(hours=1), -1),
        (NOW - timedelta(days=3), -3),
    ],
)
def test_days_left_are_whole_days_rounded_down(not_after: datetime, days: int) -> None:
    assert days_left(not_after, NOW) == days


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("8080", PortSpec("tcp", None, 8080)),
        ("tcp://8080", PortSpec("tcp", None, 8080)),
        ("tcp://0.0.0.0:443", PortSpec("tcp", "0.0.0.0", 443)),
        ("tcp://127.0.0.1:3306", PortSpec("tcp", "127.0.0.1", 3306)),
        ("tcp://[::]:443", PortSpec("tcp", "::", 443)),
        ("tcp://:::443", PortSpec("tcp", "::", 443)),
        ("tcp://[::1]:8000", PortSpec("tcp", "::1", 8000)),
        ("udp://127.0.0.1:53", PortSpec("udp", "127.0.0.1", 53)),
        ("127.0.0.1:6379", PortSpec("tcp", "127.0.0.1", 6379)),
        ("unix:///run/php/php8.2-fpm.sock", PortSpec("unix", "/run/php/php8.2-fpm.sock")),
    ],
)
def test_port_specs_are_parsed(text: str, spec: PortSpec) -> None:
    assert parse_port_spec(text) == spec


@pytest.mark.parametrize(
    "text",
    ["", "http", "0", "65536", "tcp://example.org:443", "sctp://0.0.0.0:80", "unix://run/x.sock"],
)
def test_a_bad_port_spec_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a port like 8080, .*got " + repr(text)):
        parse_port_spec(text)


@pytest.mark.parametrize(
    ("listening", "wanted", "serves"),
    [
        ("tcp://127.0.0.1:8080", "8080", True),  # a bare port: any address
        ("tcp://:::8080", "8080", True),
        ("tcp://127.0.0.1:8081", "8080", False),
        ("udp://0.0.0.0:8080", "8080", False),
        ("tcp://0.0.0.0:443", "tcp://0.0.0.0:443", True),
        ("tcp://127.0.0.1:443", "tcp://0.0.0.0:443", False),  # not on every address
        ("tcp://0.0.0.0:3306", "tcp://127.0.0.1:3306", True),  # the wildcard covers it
        ("tcp://10.0.0.5:3306", "tcp://127.0.0.1:3306", False),
        ("tcp://:::443", "tcp://0.0.0.0:443", False),  # IPv6-only for ss: not IPv4
        ("tcp://:::443", "tcp://[::]:443", True),
        ("tcp://:::443", "tcp://[::1]:443", True),
        ("tcp://0.0.0.0:443", "tcp://[::]:443", False),
        ("tcp://127.0.0.53%lo:53", "tcp://127.0.0.53:53", True),
        ("udp://127.0.0.1:53", "udp://127.0.0.1:53", True),
        ("unix:///run/php/fpm.sock", "unix:///run/php/fpm.sock", True),
        ("unix:///run/php/other.sock", "unix:///run/php/fpm.sock", False),
        ("tcp://*:80", "tcp://0.0.0.0:80", False),  # testinfra never lists '*' as an address
    ],
)
def test_a_listening_socket_serves_the_ports_it_covers(
    listening: str, wanted: str, serves: bool
) -> None:
    assert listening_serves(listening, parse_port_spec(wanted)) is serves


PROC_STAT = """1 (init) S 0 1 1 0 -1 4194560 32 0
412 (php-fpm8.2) S 1 412 412 0 -1 4194624 1
413 (php-fpm8.2) Z 412 412 412 0 -1 4227148 0
900 (tmux: server) S 1 900 900 0 -1 4194368 10
901 (a) (b) c)) R 900 901 900 0 -1 4194304 0
not a stat line
77 (cut short
"""


def test_proc_stat_lines_give_pid_command_name_and_state() -> None:
    assert parse_proc_stat(PROC_STAT) == [
        ProcessEntry(1, "init", "S"),
        ProcessEntry(412, "php-fpm8.2", "S"),
        ProcessEntry(413, "php-fpm8.2", "Z"),
        ProcessEntry(900, "tmux: server", "S"),
        ProcessEntry(901, "a) (b) c)", "R"),
    ]


def test_the_detail_names_every_failed_item_and_data_every_item() -> None:
    outcomes = [
        Outcome("process sshd", True, "process sshd: 2 running", {"count": 2}),
        Outcome("port tcp://0.0.0.0:8080", False, "port tcp://0.0.0.0:8080 not listening"),
        Outcome("disk /srv", False, "disk /srv: 1.2 GiB free < 2 GiB", {"free_bytes": 1}),
    ]
    result = summarize("host", outcomes)
    assert not result.ok
    assert result.kind == "host"
    assert result.detail == (
        "port tcp://0.0.0.0:8080 not listening; disk /srv: 1.2 GiB free < 2 GiB"
    )
    assert [item["item"] for item in result.data["items"]] == [o.item for o in outcomes]
    assert result.data["items"][0] == {
        "item": "process sshd",
        "ok": True,
        "detail": "process sshd: 2 running",
        "count": 2,
    }
    assert result.data["failed"] == 2


def test_a_passing_check_sums_up_its_items() -> None:
    result = summarize("host", [Outcome("process sshd", True, "x"), Outcome("disk /", True, "y")])
    assert result.ok
    assert result.detail == "2 items passed: process sshd, disk /"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({}, "expected at least one of services, processes, ports, disk_free, tls"),
        ({"ports": ["8080", "tcp://db:3306"]}, "got 'tcp://db:3306'"),
        ({"disk_free": {"/srv": "2 gigs"}}, "/srv: expected a minimum free space like 2G"),
    ],
)
def test_the_inventory_refuses_host_checks_it_cannot_run(
    items: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        HostCheck.model_validate({"check": "host", **items})
