"""Gallery 2.0.0: a photo gallery block on the homepage."""

from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    if context["path"] == "/":
        page["sections"].append(
            '<section class="gallery"><h2>Galerie</h2><p>Nos dernières créations.</p></section>'
        )
