"""Sizes for people."""

from __future__ import annotations


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'; bytes below 1 KiB stay exact."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
