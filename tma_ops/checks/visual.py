"""Visual regression check: full-page screenshots before and after a change, compared pixel by
pixel in a headless Chromium (Debian's `chromium`, driven by Playwright).

Files go under `<artifacts>/visual/` (a check with a name of its own: `<artifacts>/visual/<name>/`)
as `<page>.before.png`, `<page>.after.png` and `<page>.diff.png`; the baseline records each
before file's path and sha256, and `check` compares only with the very file it recorded.
Elements matching an ignored CSS selector are painted one solid colour in both shots; ignored
rectangles are left out of the comparison.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.visual_diff import Box, compare_images, percent, render_diff
from tma_ops.errors import TmaError
from tma_ops.model_checks import IgnoreRect, VisualCheck, VisualPage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 30_000
NO_BEFORE = "no before screenshot to compare with"


class PageNotShot(Exception):
    """A page that did not load or could not be captured; the message says why."""


@dataclass(frozen=True)
class Shot:
    path: Path
    sha256: str
    width: int
    height: int

    @classmethod
    def save(cls, path: Path, png: bytes) -> Shot:
        path.write_bytes(png)
        with Image.open(path) as image:
            width, height = image.size
        return cls(path, hashlib.sha256(png).hexdigest(), width, height)

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "size": [self.width, self.height]}


@dataclass(frozen=True)
class PageVerdict:
    data: dict[str, Any]
    problem: str | None = None  # why the page fails the check
    note: str | None = None  # what could not be compared


class VisualRegression:
    def __init__(self, spec: VisualCheck, target: CheckTarget) -> None:
        self.spec = spec
        self.name = spec.name
        self.directory = target.artifacts / "visual"
        if spec.name != "visual":
            self.directory /= re.sub(r"[^A-Za-z0-9._-]+", "-", spec.name).strip("-.") or "check"

    def baseline(self) -> dict[str, Any]:
        """Screenshot every page; a page that does not load is recorded with why."""
        pages: dict[str, Any] = {}
        for page, shot in self._shoot_all("before"):
            pages[page.label] = {"url": page.url, **_as_record(shot)}
        return {"pages": pages}

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult:
        before = baseline.get("pages", {}) if baseline else None
        verdicts = {
            page.label: self.judge(page, shot, before) for page, shot in self._shoot_all("after")
        }
        problems = [v.problem for v in verdicts.values() if v.problem]
        return CheckResult(
            name=self.name,
            ok=not problems,
            detail="; ".join(problems) or self._summary(verdicts, compared=before is not None),
            data={
                "threshold": self.spec.threshold,
                "pages": {k: v.data for k, v in verdicts.items()},
            },
            kind="visual",
        )

    def _shoot_all(self, moment: str) -> list[tuple[VisualPage, Shot | str]]:
        """Each page's screenshot (or why there is none), from one browser opened for them all."""
        self.directory.mkdir(parents=True, exist_ok=True)
        shots: list[tuple[VisualPage, Shot | str]] = []
        with HeadlessChromium(self.spec) as browser:
            for page in self.spec.pages:
                path = self.directory / f"{page.label}.{moment}.png"
                try:
                    shots.append((page, browser.shoot(page, path)))
                except PageNotShot as exc:
                    path.unlink(missing_ok=True)  # never leave an older run's file as this one's
                    shots.append((page, str(exc)))
        return shots

    def judge(
        self, page: VisualPage, after: Shot | str, before_pages: dict[str, Any] | None
    ) -> PageVerdict:
        """One page's verdict from its after shot (or why there is none) and the baseline's
        records of the before shots (None: no baseline)."""
        name = page.label
        if isinstance(after, str):
            return PageVerdict({"url": page.url, "error": after}, problem=f"{name}: {after}")
        data: dict[str, Any] = {"url": page.url, "after": after.record()}
        if before_pages is None:
            return PageVerdict(data, note=NO_BEFORE)
        before = before_pages.get(name)
        if before is None:
            return PageVerdict(data, note=f"{name}: {NO_BEFORE} (the page was not in the baseline)")
        missing = _why_not_comparable(before)
        if missing:
            return PageVerdict(data, note=f"{name}: {NO_BEFORE} ({missing})")
        share, diff = self._compare(page, Path(before["path"]), after.path)
        data.update(
            share=round(share, 6),
            before={key: before[key] for key in ("path", "sha256", "size")},
            diff={"path": str(diff), "sha256": _sha256(diff)},
        )
        if share > self.spec.threshold:
            problem = f"{name}: {percent(share)} of pixels changed > {percent(self.spec.threshold)}"
            return PageVerdict(data, problem=problem)
        return PageVerdict(data)

    def _compare(self, page: VisualPage, before: Path, after: Path) -> tuple[float, Path]:
        """The share of changed pixels, and the diff image written for the report."""
        diff = self.directory / f"{page.label}.diff.png"
        with Image.open(before) as before_image, Image.open(after) as after_image:
            comparison = compare_images(
                before_image, after_image, self.spec.pixel_tolerance, _ignored_boxes(page)
            )
            render_diff(after_image, comparison).save(diff, compress_level=1)
        return comparison.share, diff

    def _summary(self, verdicts: dict[str, PageVerdict], compared: bool) -> str:
        if not compared:
            return f"{NO_BEFORE}; {_pages(len(verdicts))} captured"
        notes = [v.note for v in verdicts.values() if v.note]
        shares = {name: v.data["share"] for name, v in verdicts.items() if "share" in v.data}
        parts = []
        if shares:
            largest = max(shares, key=lambda name: shares[name])
            parts.append(
                f"{_pages(len(shares))} within {percent(self.spec.threshold)}:"
                f" largest change {percent(shares[largest])} ({largest})"
            )
        return "; ".join(parts + notes)


class HeadlessChromium:
    """One headless Chromium for one check run: launched on entry, closed on exit."""

    def __init__(self, spec: VisualCheck) -> None:
        self.spec = spec
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def __enter__(self) -> HeadlessChromium:
        if not CHROMIUM.exists():
            raise TmaError(
                f"visual check: Chromium not found at {CHROMIUM}; install the `chromium`"
                " package (apt-get install chromium)"
            )
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            self._playwright.stop()
            raise TmaError(f"visual check: Chromium did not start: {_first_line(exc)}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    def shoot(self, page: VisualPage, path: Path) -> Shot:
        """Load the page in a fresh context (no cookies from another page) and screenshot it."""
        assert self._browser is not None
        viewport = self.spec.viewport
        context = self._browser.new_context(
            viewport={"width": viewport.width, "height": viewport.height}, device_scale_factor=1
        )
        try:
            tab = context.new_page()
            _load(tab, page.url)
            if self.spec.wait_ms:
                tab.wait_for_timeout(self.spec.wait_ms)
            return Shot.save(path, self._capture(tab, page))
        finally:
            context.close()

    def _capture(self, tab: Page, page: VisualPage) -> bytes:
        masks = [tab.locator(selector) for selector in page.ignore if isinstance(selector, str)]
        try:
            return tab.screenshot(
                full_page=self.spec.full_page,
                mask=masks,
                animations="disabled",
                timeout=PAGE_TIMEOUT_MS,
            )
        except PlaywrightTimeout as exc:
            raise PageNotShot(f"no screenshot within {PAGE_TIMEOUT_MS // 1000} s") from exc
        except PlaywrightError as exc:
            raise PageNotShot(f"screenshot failed: {_first_line(exc)}") from exc


def _load(tab: Page, url: str) -> None:
    try:
        response = tab.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    except PlaywrightTimeout as exc:
        raise PageNotShot(f"not loaded within {PAGE_TIMEOUT_MS // 1000} s (timed out)") from exc
    except PlaywrightError as exc:
        raise PageNotShot(_describe_load_failure(exc)) from exc
    if response is not None and response.status >= 400:
        raise PageNotShot(f"HTTP status {response.status}")


def _describe_load_failure(exc: PlaywrightError) -> str:
    found = re.search(r"net::(ERR_[A-Z_]+)", exc.message)
    code = found.group(1) if found else ""
    if code == "ERR_CONNECTION_REFUSED":
        return "connection refused"
    if code == "ERR_NAME_NOT_RESOLVED":
        return "cannot resolve host"
    if code.startswith(("ERR_CERT_", "ERR_SSL_")):
        return f"TLS error: {code}"
    if code.endswith("TIMED_OUT"):
        return "no response (timed out)"
    if code:
        return f"connection failed: {code}"
    return f"page did not load: {_first_line(exc)}"


def _pages(count: int) -> str:
    return f"{count} page{'s' if count > 1 else ''}"


def _first_line(exc: PlaywrightError) -> str:
    return exc.message.strip().splitlines()[0] if exc.message.strip() else type(exc).__name__


def _as_record(shot: Shot | str) -> dict[str, Any]:
    return {"error": shot} if isinstance(shot, str) else shot.record()


def _why_not_comparable(before: dict[str, Any]) -> str | None:
    """Why a recorded before screenshot cannot be compared with, or None when it can."""
    if "error" in before:
        return f"it did not load before the change: {before['error']}"
    path = Path(before["path"])
    if not path.is_file():
        return f"{path} is gone"
    if _sha256(path) != before["sha256"]:
        return f"{path} is not the file the baseline recorded (sha256 differs)"
    return None


def _ignored_boxes(page: VisualPage) -> list[Box]:
    return [
        (rect.x, rect.y, rect.width, rect.height)
        for rect in page.ignore
        if isinstance(rect, IgnoreRect)
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
