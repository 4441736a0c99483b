"""The Python stack's pure parts: a requirements file's pins and what an index answer offers."""

from __future__ import annotations

import pytest

from tma_ops.errors import StackError
from tma_ops.model_stacks import PythonStack
from tma_ops.stacks.python import PythonDriver
from tma_ops.stacks.python_index import IndexAnswer, released_utc
from tma_ops.stacks.python_requirements import Pin, read_pins, rewrite
from tma_ops.stacks.registry import driver_for

pytestmark = pytest.mark.unit

REQUIREMENTS = """\
# the site's pins
Django==4.2.30  # web framework
wagtail[search] == 6.2.3 ; python_version >= "3.9"
Pillow>=10
gunicorn===23.0.0
django-filter==24.*
-r base.txt
Typing_Extensions==4.12.2
"""


def test_exact_pins_are_read_by_normal_name_and_other_lines_are_not_components() -> None:
    assert read_pins(REQUIREMENTS, "requirements.txt") == {
        "django": Pin("django", "4.2.30", 2, False),
        "wagtail": Pin("wagtail", "6.2.3", 3, False),
        "typing-extensions": Pin("typing-extensions", "4.12.2", 8, False),
    }


def test_a_package_pinned_twice_is_refused_with_both_lines() -> None:
    with pytest.raises(StackError, match=r"^r.txt:3: django is pinned again \(first on line 1\)"):
        read_pins("django==4.2\nwagtail==6.2\nDjango==5.0\n", "r.txt")


def test_rewrite_changes_only_the_planned_versions_and_keeps_the_rest() -> None:
    text = REQUIREMENTS.replace("\n", "\r\n")
    new = rewrite(text, {"wagtail": "6.4.2", "typing-extensions": "4.13.0"}, "r.txt")
    expected = text.replace("6.2.3", "6.4.2").replace("4.12.2", "4.13.0")
    assert new == expected


def test_rewrite_refuses_a_package_that_is_not_pinned_or_pinned_with_hashes() -> None:
    hashed = "wagtail==6.2.3 \\\n    --hash=sha256:00ff\ndjango==4.2.30\n"
    with pytest.raises(StackError, match=r"^r.txt:1: wagtail is pinned with --hash"):
        rewrite(hashed, {"wagtail": "6.4.2"}, "r.txt")
    assert rewrite(hashed, {"django": "4.2.31"}, "r.txt").endswith("django==4.2.31\n")
    with pytest.raises(StackError, match=r"^r.txt: pillow is not pinned"):
        rewrite(REQUIREMENTS, {"pillow": "11.0"}, "r.txt")


def _file(name: str, **facts: object) -> list[object]:
    return [
        name,
        facts.get("sha256", name[:8]),
        facts.get("uploaded"),
        facts.get("requires_python"),
        facts.get("yanked", False),
    ]


def test_releases_skip_yanked_files_and_files_for_another_python() -> None:
    answer = IndexAnswer(
        index="https://index.example/simple/",
        python="3.11.2",
        tags=["cp311-cp311-manylinux_2_17_x86_64", "py3-none-any"],
        projects={
            "demo": {
                "files": [
                    _file("demo-1.0.tar.gz", uploaded="2024-01-02T03:04:05.123456Z"),
                    _file("demo-1.0-py3-none-any.whl", sha256="pure", uploaded="2024-01-03T00:00Z"),
                    _file("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", sha256="native"),
                    _file("demo-1.1-py3-none-any.whl", yanked=True),
                    _file("demo-2.0-py3-none-any.whl", requires_python=">=3.12"),
                    _file("demo_extras-3.0-py3-none-any.whl"),
                    _file("demo-1.2-cp27-cp27m-win32.whl", sha256="other-platform"),
                ]
            },
            "private": {"missing": True},
        },
    )
    releases = answer.releases("demo")
    assert releases is not None
    assert sorted(releases) == ["1.0", "1.2"]
    assert releases["1.0"].sha256 == "native"  # the best-ranked tag, as pip chooses
    assert releases["1.0"].released == "2024-01-02T03:04:05Z"  # the first upload
    assert releases["1.2"].sha256 == ""  # no wheel this Python can install
    assert answer.releases("private") is None


def test_upload_times_become_utc_seconds() -> None:
    assert released_utc("2025-06-12T16:58:22.5+02:00") == "2025-06-12T14:58:22Z"
    assert released_utc("not a time") == ""


def test_the_registry_builds_the_driver_from_the_inventory_model() -> None:
    spec = PythonStack.model_validate(
        {"kind": "python", "settings": "site.settings.production", "ready_timeout": 30}
    )
    driver = driver_for(spec)
    assert isinstance(driver, PythonDriver)
    assert (driver.settings, driver.ready_timeout, driver.venv) == (
        "site.settings.production",
        30,
        ".venv",
    )
