"""A WordPress site dressed for visual checks: the active theme's stylesheet loaded, a layout of
large coloured blocks taller than the viewport, and a rotating banner below the fold whose colour
and text change on every page view (as a carousel or an advertisement would)."""

from __future__ import annotations

from pathlib import Path

from harness.wordpress import PLAIN_THEME, WordPressSite

BANNER_SELECTOR = "#rotating-banner"

BANNER_PLUGIN = """<?php
/*
Plugin Name: TMA Rotating Banner
*/
add_action( 'wp_enqueue_scripts', function () {
	wp_enqueue_style( 'tma-theme', get_stylesheet_uri(), array(), null );
} );
add_action( 'wp_footer', function () {
	$shown = (int) get_option( 'tma_banner_shown', 0 ) + 1;
	update_option( 'tma_banner_shown', $shown, false );
	$colours = array( '#c0392b', '#27ae60', '#2980b9', '#f1c40f', '#8e44ad' );
	printf(
		'<div id="%s" style="background:%s">Offre n°%d</div>',
		'rotating-banner',
		$colours[ $shown % count( $colours ) ],
		$shown
	);
} );
"""

LAYOUT_CSS = """
body { margin: 0; font-family: "DejaVu Sans", sans-serif; background: #fdfaf3; }
h1 { margin: 0; padding: 60px 40px; height: 240px; background: #1d3557; color: #fff; }
.theme { margin: 40px; padding: 20px; height: 460px; background: #e9c46a; font-size: 28px; }
#rotating-banner {
  height: 120px; line-height: 120px; color: #fff; font-size: 40px; text-align: center;
}
"""

# The kind of mistake an update of a theme or a page builder makes: the header squeezed to a
# column on the right, the content gone.
BROKEN_LAYOUT_CSS = """
h1 { width: 30%; float: right; }
.theme { display: none; }
"""


def dress_for_visual_checks(site: WordPressSite) -> None:
    """Install the banner (a must-use plugin) and append the layout to the theme's style.css."""
    plugins = site.root / "wp-content/mu-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "tma-banner.php").write_text(BANNER_PLUGIN)
    with theme_stylesheet(site).open("a") as stylesheet:
        stylesheet.write(LAYOUT_CSS)


def theme_stylesheet(site: WordPressSite) -> Path:
    return site.root / "wp-content/themes" / PLAIN_THEME / "style.css"


def break_layout(site: WordPressSite) -> None:
    with theme_stylesheet(site).open("a") as stylesheet:
        stylesheet.write(BROKEN_LAYOUT_CSS)


def banners_shown(site: WordPressSite) -> int:
    return int(site.option("tma_banner_shown") or 0)
