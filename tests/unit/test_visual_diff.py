from __future__ import annotations

import io
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from tma_ops.checks import CheckTarget
from tma_ops.checks.suite import build_checks
from tma_ops.checks.visual import Shot, VisualRegression
from tma_ops.checks.visual_diff import Box, compare_images, percent, render_diff
from tma_ops.inventory_errors import describe_validation_error, error_key, first_error
from tma_ops.model import Environment
from tma_ops.model_checks import VisualCheck, VisualPage

pytestmark = pytest.mark.unit

GREY = (128, 128, 128)
WHITE = (255, 255, 255)


def image(
    size: tuple[int, int] = (10, 10),
    pixels: dict[tuple[int, int], tuple[int, int, int]] | None = None,
) -> Image.Image:
    """A grey image with the given pixels set."""
    result = Image.new("RGB", size, GREY)
    for position, colour in (pixels or {}).items():
        result.putpixel(position, colour)
    return result


# name, before, after, pixel_tolerance, ignored boxes, changed pixels, compared pixels
CASES: list[tuple[str, Image.Image, Image.Image, int, list[Box], int, int]] = [
    ("identical", image(), image(), 16, [], 0, 100),
    ("one pixel far off", image(), image(pixels={(3, 4): (255, 0, 0)}), 16, [], 1, 100),
    ("within tolerance", image(), image(pixels={(3, 4): (140, 120, 135)}), 16, [], 0, 100),
    ("exactly the tolerance", image(), image(pixels={(0, 0): (144, 112, 144)}), 16, [], 0, 100),
    ("one channel over", image(), image(pixels={(0, 0): (128, 128, 145)}), 16, [], 1, 100),
    ("zero tolerance", image(), image(pixels={(9, 9): (129, 128, 128)}), 0, [], 1, 100),
    ("change in ignored box", image(), image(pixels={(5, 5): WHITE}), 16, [(4, 4, 2, 2)], 0, 96),
    (
        "change beside ignored box",
        image(),
        image(pixels={(7, 7): (0, 0, 0)}),
        16,
        [(4, 4, 2, 2)],
        1,
        96,
    ),
    ("overlapping boxes counted once", image(), image(), 16, [(0, 0, 5, 5), (3, 3, 4, 4)], 0, 63),
    ("box clipped to the image", image(), image(), 16, [(8, 8, 50, 50)], 0, 96),
    ("box outside the image", image(), image(), 16, [(20, 20, 5, 5)], 0, 100),
    ("everything ignored", image(), image(pixels={(1, 1): WHITE}), 16, [(0, 0, 10, 10)], 0, 0),
    ("taller after: extra rows change", image((4, 4)), image((4, 6)), 16, [], 8, 24),
    ("narrower after: extra columns", image((6, 4)), image((4, 4)), 16, [], 8, 24),
    ("sizes cross: union", image((4, 6)), image((6, 4)), 16, [], 20, 36),
    ("extra area ignored", image((4, 4)), image((4, 6)), 16, [(0, 4, 4, 2)], 0, 16),
]


@pytest.mark.parametrize(
    ("before", "after", "tolerance", "boxes", "changed", "compared"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compare_images(
    before: Image.Image,
    after: Image.Image,
    tolerance: int,
    boxes: list[Box],
    changed: int,
    compared: int,
) -> None:
    comparison = compare_images(before, after, tolerance, boxes)
    assert (comparison.changed_pixels, comparison.compared_pixels) == (changed, compared)
    assert comparison.size == (max(before.width, after.width), max(before.height, after.height))
    assert comparison.share == (changed / compared if compared else 0.0)


@pytest.mark.parametrize(
    ("share", "threshold", "over"),
    [(0.0, 0.0, False), (0.01, 0.01, False), (0.0101, 0.01, True), (1.0, 1.0, False)],
)
def test_threshold_is_a_maximum(share: float, threshold: float, over: bool) -> None:
    changed = round(share * 10_000)
    before = image((100, 100))
    after = before.copy()
    for index in range(changed):  # the first `changed` pixels, row by row
        after.putpixel((index % 100, index // 100), (0, 0, 0))
    comparison = compare_images(before, after, 16)
    assert comparison.changed_pixels == changed
    assert (comparison.share > threshold) is over


def test_rgba_and_rgb_images_compare() -> None:
    before = image().convert("RGBA")
    assert compare_images(before, image(), 0).changed_pixels == 0


def test_diff_image_marks_changed_pixels_red_and_ignored_blue() -> None:
    before, after = image((4, 4)), image((4, 6), {(1, 1): (0, 0, 0)})
    comparison = compare_images(before, after, 16, [(3, 0, 1, 1)])
    diff = render_diff(after, comparison)
    assert diff.size == (4, 6)
    assert diff.getpixel((1, 1)) == (230, 0, 0)
    assert diff.getpixel((2, 5)) == (230, 0, 0)  # extra row
    unchanged = diff.getpixel((0, 0))
    ignored = diff.getpixel((3, 0))
    assert isinstance(unchanged, tuple) and isinstance(ignored, tuple)
    assert unchanged[0] == unchanged[1] == unchanged[2]  # faded grey
    assert ignored[2] > ignored[0]  # tinted blue


def test_full_page_shots_compare_fast() -> None:
    before = Image.effect_noise((1280, 4000), 40).convert("RGB")
    after = before.copy()
    ImageDraw.Draw(after).rectangle((100, 500, 700, 900), fill=(255, 0, 0))
    start = time.monotonic()
    comparison = compare_images(before, after.crop((0, 0, 1280, 4200)), 16, [(0, 0, 1280, 80)])
    render_diff(after, comparison)
    assert time.monotonic() - start < 5  # a per-pixel Python loop takes about a minute
    assert comparison.changed_pixels >= 1280 * 200  # the extra rows at least


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.234, "23.4 %"),
        (0.01, "1 %"),
        (0.0104, "1.04 %"),
        (0.000312, "0.0312 %"),
        (0.0, "0 %"),
        (1.0, "100 %"),
        (0.000_000_1, "< 0.001 %"),
    ],
)
def test_percent(share: float, text: str) -> None:
    assert percent(share) == text


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://example.org", "home"),
        ("https://example.org/", "home"),
        ("https://example.org/a-propos/", "a-propos"),
        ("https://example.org/Boutique/Panier?lang=fr", "boutique-panier-lang-fr"),
        ("https://example.org/caf%C3%A9/", "caf-c3-a9"),
    ],
)
def test_page_label_from_url(url: str, label: str) -> None:
    assert VisualPage(url=url).label == label
    assert VisualPage(url=url, name="accueil").label == "accueil"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"pages": [{"url": "https://example.org/"}, {"url": "https://example.org/?"}]},
            "smoke.0.pages: expected pages of distinct names (they name the screenshot files);"
            " 'home' is used twice: give one a `name`",
        ),
        (
            {"pages": [{"url": "https://example.org/", "name": "../home"}]},
            "smoke.0.pages.0.name: expected a name of letters, digits, '.', '_' or '-' (it names"
            " the screenshot files), got '../home'",
        ),
        (
            {"pages": [{"url": "https://example.org/", "ignore": [{"x": 0, "y": 0, "width": 0}]}]},
            "smoke.0.pages.0.ignore.0.rectangle.width: expected an integer greater than 0; got 0",
        ),
        (
            {"pages": [{"url": "https://example.org/", "ignore": [""]}]},
            "smoke.0.pages.0.ignore.0.selector: invalid value",
        ),
    ],
)
def test_bad_pages_are_named(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VisualCheck.model_validate({"check": "visual", **spec})
    error = first_error(caught.value, VisualCheck)
    key = error_key("smoke.0", error["loc"])
    assert describe_validation_error(key, error, VisualCheck).startswith(message)


# --- a page's verdict from screenshot files ------------------------------------------------------


def regression(tmp_path: Path, **spec: Any) -> VisualRegression:
    model = VisualCheck.model_validate(
        {"check": "visual", "pages": [{"url": "https://example.org/"}], **spec}
    )
    env = Environment.model_validate(
        {
            "executor": "local://",
            "root": str(tmp_path),
            "database": {"engine": "sqlite", "path": "site.db"},
            "smoke": [{"url": "https://example.org/"}],
        }
    )
    check = VisualRegression(model, CheckTarget("atelier", "staging", env, tmp_path))
    check.directory.mkdir(parents=True)
    return check


def shot(path: Path, picture: Image.Image) -> Shot:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return Shot.save(path, buffer.getvalue())


@pytest.mark.parametrize(
    ("threshold", "problem"),
    [(0.01, None), (0.005, "home: 1 % of pixels changed > 0.5 %")],
)
def test_verdict_names_the_page_over_threshold(
    tmp_path: Path, threshold: float, problem: str | None
) -> None:
    check = regression(tmp_path, threshold=threshold)
    page = check.spec.pages[0]
    before = shot(check.directory / "home.before.png", image((20, 10)))
    after = shot(
        check.directory / "home.after.png", image((20, 10), {(0, 0): WHITE, (1, 0): WHITE})
    )
    verdict = check.judge(page, after, {"home": {"url": page.url, **before.record()}})
    assert verdict.problem == problem
    assert verdict.data["share"] == 0.01
    assert verdict.data["before"] == before.record()
    diff = check.directory / "home.diff.png"
    assert verdict.data["diff"] == {
        "path": str(diff),
        "sha256": sha256(diff.read_bytes()).hexdigest(),
    }


@pytest.mark.parametrize(
    ("tamper", "note"),
    [
        (
            "missing entry",
            "home: no before screenshot to compare with (the page was not in the baseline)",
        ),
        (
            "load error",
            "home: no before screenshot to compare with (it did not load before the change:"
            " HTTP status 503)",
        ),
        ("file gone", "home: no before screenshot to compare with ({path} is gone)"),
        (
            "file replaced",
            "home: no before screenshot to compare with ({path} is not the file the baseline"
            " recorded (sha256 differs))",
        ),
    ],
)
def test_verdict_without_a_usable_before_shot_passes_and_says_why(
    tmp_path: Path, tamper: str, note: str
) -> None:
    check = regression(tmp_path)
    page = check.spec.pages[0]
    before = shot(check.directory / "home.before.png", image())
    after = shot(check.directory / "home.after.png", image((10, 30)))
    pages: dict[str, Any] = {"home": {"url": page.url, **before.record()}}
    if tamper == "missing entry":
        pages = {}
    elif tamper == "load error":
        pages["home"] = {"url": page.url, "error": "HTTP status 503"}
    elif tamper == "file gone":
        before.path.unlink()
    else:
        image((10, 11)).save(before.path)
    verdict = check.judge(page, after, pages)
    assert verdict.problem is None
    assert verdict.note == note.format(path=before.path)
    assert "share" not in verdict.data


def test_verdict_leaves_declared_rectangles_out(tmp_path: Path) -> None:
    ignore = [{"x": 0, "y": 0, "width": 2, "height": 1}, "#banner"]
    check = regression(tmp_path, pages=[{"url": "https://example.org/", "ignore": ignore}])
    page = check.spec.pages[0]
    before = shot(check.directory / "home.before.png", image((20, 10)))
    after = shot(
        check.directory / "home.after.png", image((20, 10), {(0, 0): WHITE, (1, 0): WHITE})
    )
    verdict = check.judge(page, after, {"home": {"url": page.url, **before.record()}})
    assert verdict.problem is None
    assert verdict.data["share"] == 0.0


def test_suite_builds_the_visual_check_from_the_inventory(tmp_path: Path) -> None:
    env = Environment.model_validate(
        {
            "executor": "local://",
            "root": str(tmp_path),
            "database": {"engine": "sqlite", "path": "site.db"},
            "smoke": [
                {"url": "https://example.org/"},
                {"check": "visual", "name": "mobile", "pages": [{"url": "https://example.org/"}]},
            ],
        }
    )
    checks = build_checks(CheckTarget("atelier", "staging", env, tmp_path))
    visual = checks[1]
    assert isinstance(visual, VisualRegression)
    assert visual.name == "mobile"
    assert visual.directory == tmp_path / "visual/mobile"  # apart from the default check's files
