"""Pixel comparison of two screenshots: tolerance per channel, ignored rectangles, size changes.

Everything runs in Pillow's C loops (difference, lookup tables, histograms): a full-page shot
1280 pixels wide and several thousand high compares in a few hundred milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw

Box = tuple[int, int, int, int]  # x, y, width, height in pixels from the top left corner

CHANGED = 255  # value of a pixel set in a mask
CHANGED_COLOUR = (230, 0, 0)
IGNORED_COLOUR = (90, 140, 255)


@dataclass(frozen=True)
class Comparison:
    size: tuple[int, int]  # the union of both images' sizes: width, height
    changed_pixels: int  # outside ignored areas
    compared_pixels: int  # the union's area minus the ignored areas
    changed: Image.Image  # mask ("L", union size): 255 where a compared pixel changed
    ignored: Image.Image  # mask ("L", union size): 255 where pixels were left out

    @property
    def share(self) -> float:
        """Changed pixels over compared ones; 0 when everything was ignored."""
        return self.changed_pixels / self.compared_pixels if self.compared_pixels else 0.0


def compare_images(
    before: Image.Image, after: Image.Image, pixel_tolerance: int, ignore: Iterable[Box] = ()
) -> Comparison:
    """Compare over the union of both sizes: a pixel one image lacks counts as changed, a pixel
    any channel of which moved by more than `pixel_tolerance` too, unless it lies in `ignore`."""
    size = (max(before.width, after.width), max(before.height, after.height))
    ignored = ignore_mask(size, ignore)
    changed = ImageChops.subtract(changed_mask(before, after, pixel_tolerance), ignored)
    ignored_pixels = count_set(ignored)
    return Comparison(
        size=size,
        changed_pixels=count_set(changed),
        compared_pixels=size[0] * size[1] - ignored_pixels,
        changed=changed,
        ignored=ignored,
    )


def changed_mask(before: Image.Image, after: Image.Image, pixel_tolerance: int) -> Image.Image:
    """255 where the images differ by more than the tolerance in any channel, and wherever only
    one of them has pixels (the union of their sizes minus their common top-left area)."""
    size = (max(before.width, after.width), max(before.height, after.height))
    common = (min(before.width, after.width), min(before.height, after.height))
    region = (0, 0, *common)
    difference = ImageChops.difference(
        before.convert("RGB").crop(region), after.convert("RGB").crop(region)
    )
    over = [0] * (pixel_tolerance + 1) + [CHANGED] * (255 - pixel_tolerance)
    red, green, blue = difference.point(over * 3).split()
    mask = Image.new("L", size, CHANGED)
    mask.paste(ImageChops.lighter(ImageChops.lighter(red, green), blue), (0, 0))
    return mask


def ignore_mask(size: tuple[int, int], boxes: Iterable[Box]) -> Image.Image:
    """255 inside the boxes, clipped to `size`."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for x, y, width, height in boxes:
        draw.rectangle((x, y, x + width - 1, y + height - 1), fill=CHANGED)
    return mask


def count_set(mask: Image.Image) -> int:
    return mask.histogram()[CHANGED]


def render_diff(after: Image.Image, comparison: Comparison) -> Image.Image:
    """The after image faded to grey, changed pixels in red, ignored areas tinted blue."""
    canvas = Image.new("L", comparison.size, 255)
    canvas.paste(after.convert("L"), (0, 0))
    faded = canvas.point(lambda value: 160 + value * 95 // 255).convert("RGB")
    tint = comparison.ignored.point(lambda value: value // 2)
    faded.paste(Image.new("RGB", comparison.size, IGNORED_COLOUR), (0, 0), tint)
    faded.paste(Image.new("RGB", comparison.size, CHANGED_COLOUR), (0, 0), comparison.changed)
    return faded


def percent(share: float) -> str:
    """A share as a percentage to set beside a threshold: '23.4 %', '1.04 %', '0.0312 %', '1 %'."""
    value = share * 100
    if 0 < value < 0.001:
        return "< 0.001 %"
    text = f"{value:.1f}" if value >= 10 else f"{value:.3g}"
    return f"{text.removesuffix('.0')} %"
