"""SEO 1.0.0: appends the tagline to the page title."""

from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    tagline = context["options"].get("tagline", "")
    if tagline:
        page["title"] = f"{page['title']} · {tagline}"
