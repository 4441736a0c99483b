"""SEO 1.1.0: appends the tagline to the page title and adds a meta description section."""

from html import escape
from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    tagline = context["options"].get("tagline", "")
    if tagline:
        page["title"] = f"{page['title']} · {tagline}"
    description = escape(tagline or context["options"].get("site_title", ""))
    page["sections"].append(
        f'<section class="seo-meta"><meta name="description" content="{description}">'
        f"<p>Métadonnées SEO : {description}</p></section>"
    )
