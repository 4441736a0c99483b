"""Gallery 2.0.1: the same gallery block, with lazy-loaded images (bug-fix release)."""

from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    if context["path"] == "/":
        page["sections"].append(
            '<section class="gallery" data-loading="lazy"><h2>Galerie</h2>'
            "<p>Nos dernières créations.</p></section>"
        )
