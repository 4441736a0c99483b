"""The visual regression check on a real WordPress (Debian's package, PHP, MariaDB, php -S) seen
by Debian's headless Chromium: a rotating banner ignored by selector, a broken layout caught."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import mariadb
from harness.wordpress import WordPressSite, session_lab
from harness.wp_banner import (
    BANNER_SELECTOR,
    banners_shown,
    break_layout,
    dress_for_visual_checks,
    theme_stylesheet,
)
from PIL import Image
from wordpress_stack_support import wordpress_environment

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks import visual as visual_module
from tma_ops.checks.visual import VisualRegression
from tma_ops.errors import TmaError
from tma_ops.model_checks import VisualCheck

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WordPressSite]:
    if not visual_module.CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {visual_module.CHROMIUM} (apt-get install chromium)")
    site = session_lab(request).new_site(tmp_path_factory.mktemp("visual") / "site")
    dress_for_visual_checks(site)
    site.serve()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def stylesheet(site: WordPressSite) -> Iterator[Path]:
    """The theme's style.css, put back as it was after the test."""
    path = theme_stylesheet(site)
    original = path.read_text()
    try:
        yield path
    finally:
        path.write_text(original)


def visual_check(site: WordPressSite, artifacts: Path, **spec: Any) -> VisualRegression:
    pages = spec.pop("pages", [{"url": site.url + "/", "ignore": [BANNER_SELECTOR]}])
    model = VisualCheck.model_validate({"check": "visual", "pages": pages, **spec})
    target = CheckTarget("atelier", "staging", wordpress_environment(site), artifacts)
    return VisualRegression(model, target)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_recorded(record: dict[str, Any]) -> None:
    """The file a record names exists and has the recorded sha256."""
    assert Path(record["path"]).is_file()
    assert sha256(record["path"]) == record["sha256"]


def test_rotating_banner_ignored_by_selector_passes(site: WordPressSite, tmp_path: Path) -> None:
    check = visual_check(site, tmp_path)
    shown = banners_shown(site)
    baseline = check.baseline()
    json.dumps(baseline)  # journaled as it is
    result = check.check(baseline)
    assert banners_shown(site) == shown + 2  # a new banner colour and text at each shot
    assert result.ok, result.detail
    assert result.detail == "1 page within 1 %: largest change 0 % (home)"
    home = result.data["pages"]["home"]
    assert home["share"] == 0.0
    assert home["before"] == {k: baseline["pages"]["home"][k] for k in ("path", "sha256", "size")}
    for record in (home["before"], home["after"], home["diff"]):
        assert_recorded(record)
    assert Path(home["after"]["path"]) == tmp_path / "visual/home.after.png"
    height = home["after"]["size"][1]
    assert height > 800  # the full page, the banner below the fold of the 800 pixels viewport
    with Image.open(home["after"]["path"]) as after:
        assert after.size == (1280, height)

    # The very same check without the ignored selector sees the banner change: the pass above is
    # the mask's doing.
    unmasked = visual_check(site, tmp_path / "unmasked", pages=[{"url": site.url + "/"}])
    result = unmasked.check(unmasked.baseline())
    assert not result.ok
    share = result.data["pages"]["home"]["share"]
    assert 0.05 < share < 0.3, result.detail  # the 1280 x 120 banner over the page
    assert re.fullmatch(r"home: [\d.]+ % of pixels changed > 1 %", result.detail), result.detail


def test_broken_layout_fails_naming_the_page(
    site: WordPressSite, stylesheet: Path, tmp_path: Path
) -> None:
    check = visual_check(site, tmp_path, threshold=0.02)
    baseline = check.baseline()
    break_layout(site)
    result = check.check(baseline)
    assert not result.ok
    assert re.fullmatch(r"home: [\d.]+ % of pixels changed > 2 %", result.detail), result.detail
    home = result.data["pages"]["home"]
    assert home["share"] > 0.3
    assert home["after"]["size"][1] < home["before"]["size"][1]  # the content is gone
    assert_recorded(home["diff"])
    with Image.open(home["diff"]["path"]) as diff:
        assert diff.size == tuple(home["before"]["size"])  # the union of both sizes
        assert (230, 0, 0) in {colour for _, colour in diff.getcolors(1 << 20) or []}


def test_without_baseline_takes_the_after_shot_and_passes(
    site: WordPressSite, tmp_path: Path
) -> None:
    result = visual_check(site, tmp_path).check(None)
    assert result.ok, result.detail
    assert result.detail == "no before screenshot to compare with; 1 page captured"
    assert_recorded(result.data["pages"]["home"]["after"])
    assert "share" not in result.data["pages"]["home"]


def test_pages_that_do_not_load_fail_naming_them(site: WordPressSite, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{mariadb.free_port('127.0.0.1')}/"
    pages = [
        {"url": site.url + "/?p=999999", "name": "missing"},
        {"url": down, "name": "down"},
    ]
    check = visual_check(site, tmp_path, pages=pages)
    baseline = check.baseline()
    assert baseline["pages"]["missing"] == {
        "url": site.url + "/?p=999999",
        "error": "HTTP status 404",
    }
    assert baseline["pages"]["down"]["error"] == "connection refused"
    result: CheckResult = check.check(baseline)
    assert not result.ok
    assert result.detail == "missing: HTTP status 404; down: connection refused"
    assert result.data["pages"]["down"] == {"url": down, "error": "connection refused"}
    assert not (tmp_path / "visual/missing.after.png").exists()


def test_invalid_selector_fails_the_page(site: WordPressSite, tmp_path: Path) -> None:
    check = visual_check(site, tmp_path, pages=[{"url": site.url + "/", "ignore": ["#!!"]}])
    result = check.check(None)
    assert not result.ok
    assert result.detail.startswith("home: screenshot failed: "), result.detail
    assert "css selector" in result.detail.lower()


def test_missing_chromium_says_which_package_to_install(
    site: WordPressSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visual_module, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(TmaError, match=r"Chromium not found at .*install the `chromium` package"):
        visual_check(site, tmp_path).baseline()
