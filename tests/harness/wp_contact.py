"""A contact form plugin for the test WordPress sites (`harness.wordpress`).

`/?tma_contact=1` shows a form whose token is bound to a session cookie the page sets, so a
visitor who does not send cookies back cannot post it. A valid post stores the entry in
`{prefix}tma_contact_entries (id, email, message, created_at)` (created on activation), sets a
one-time flash cookie and redirects (303) to `/?tma_contact=1&sent=1`, which shows the
confirmation only with that cookie: cookies must also be kept across the redirect.

Version 1.0.0 works. Version 2.0.0 (same plugin) has the regression the smoke tests must catch:
its handler accepts the post, stores nothing and shows the form again.

For other tests: `contact_plugin_files(version)` (files or a zip for the stack driver),
`install_contact_plugin(site, version)` (writes the plugin, activates it once, waits until a served
site answers with the new code), `count_entries(site)`, `entries(site)`, `add_entry(site, ...)`,
`contact_journey(url)`.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from harness.wordpress import PHP, WordPressSite, fetch, write_files

CONTACT_PLUGIN = "tma-contact"
CONTACT_FILE = f"{CONTACT_PLUGIN}/{CONTACT_PLUGIN}.php"
CONTACT_PATH = "/?tma_contact=1"
WORKING_VERSION = "1.0.0"
BROKEN_VERSION = "2.0.0"
CONFIRMATION = "Merci, votre message a été envoyé"
EXPIRED = "Session expirée"
TABLE = "wp_tma_contact_entries"
TOKEN_PATTERN = r'name="tma_token" value="([0-9a-f]+)"'

HEADER = """<?php
/*
Plugin Name: TMA Contact
Version: {version}
*/
define( 'TMA_CONTACT_VERSION', '{version}' );
"""

COMMON = r"""
function tma_contact_table() {
	global $wpdb;
	return $wpdb->prefix . 'tma_contact_entries';
}

function tma_contact_create_table() {
	global $wpdb;
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	dbDelta( 'CREATE TABLE ' . tma_contact_table() . ' (
		id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
		email varchar(190) NOT NULL,
		message text NOT NULL,
		created_at datetime NOT NULL,
		PRIMARY KEY  (id)
	) ' . $wpdb->get_charset_collate() . ';' );
}
register_activation_hook( __FILE__, 'tma_contact_create_table' );

// The form's token is derived from this cookie: without it, no post is accepted.
function tma_contact_session() {
	$session = isset( $_COOKIE['tma_contact_session'] ) ? $_COOKIE['tma_contact_session'] : '';
	if ( preg_match( '/^[0-9a-f]{32}$/', $session ) ) {
		return $session;
	}
	$session = bin2hex( random_bytes( 16 ) );
	setcookie( 'tma_contact_session', $session, 0, '/', '', false, true );
	return $session;
}

function tma_contact_token( $session ) {
	return hash_hmac( 'sha256', 'tma-contact|' . $session, wp_salt( 'nonce' ) );
}

function tma_contact_page( $notice = '' ) {
	$sent = isset( $_GET['sent'] ) && isset( $_COOKIE['tma_contact_flash'] );
	if ( $sent ) {
		setcookie( 'tma_contact_flash', '', time() - 3600, '/' );
	}
	$token = tma_contact_token( tma_contact_session() );
	header( 'Content-Type: text/html; charset=utf-8' );
	echo '<!DOCTYPE html><html><head><title>Contact</title></head>';
	echo '<body data-tma-contact="' . esc_attr( TMA_CONTACT_VERSION ) . '"><h1>Contact</h1>';
	if ( $sent ) {
		echo '<p class="confirmation">Merci, votre message a été envoyé</p>';
	}
	echo $notice;
	echo '<form method="post" action="' . esc_url( home_url( '/?tma_contact=1' ) ) . '">';
	echo '<input type="hidden" name="tma_token" value="' . esc_attr( $token ) . '">';
	echo '<input type="email" name="email"><textarea name="message"></textarea>';
	echo '<button type="submit">Envoyer</button></form></body></html>';
}

function tma_contact_refuse( $status, $notice ) {
	status_header( $status );
	tma_contact_page( '<p class="error">' . $notice . '</p>' );
	exit;
}

function tma_contact_posted() {
	$posted = wp_unslash( $_POST ) + array( 'tma_token' => '', 'email' => '', 'message' => '' );
	$session = isset( $_COOKIE['tma_contact_session'] ) ? $_COOKIE['tma_contact_session'] : '';
	$expected = '' === $session ? '' : tma_contact_token( $session );
	if ( '' === $expected || ! hash_equals( $expected, (string) $posted['tma_token'] ) ) {
		tma_contact_refuse( 403, 'Session expirée : rechargez le formulaire.' );
	}
	$email = sanitize_email( $posted['email'] );
	$message = sanitize_textarea_field( $posted['message'] );
	if ( ! is_email( $email ) || '' === $message ) {
		tma_contact_refuse( 400, 'Adresse e-mail et message requis.' );
	}
	return array( 'email' => $email, 'message' => $message );
}

add_action( 'init', function () {
	if ( ! isset( $_GET['tma_contact'] ) ) {
		return;
	}
	if ( 'POST' === $_SERVER['REQUEST_METHOD'] ) {
		tma_contact_handle( tma_contact_posted() );
	}
	tma_contact_page();
	exit;
} );
"""

SENDS = r"""
function tma_contact_handle( $entry ) {
	global $wpdb;
	$entry['created_at'] = current_time( 'mysql', true );
	if ( false === $wpdb->insert( tma_contact_table(), $entry ) ) {
		tma_contact_refuse( 500, "Erreur : le message n'a pas été enregistré." );
	}
	setcookie( 'tma_contact_flash', '1', 0, '/' );
	wp_safe_redirect( home_url( '/?tma_contact=1&sent=1' ), 303 );
	exit;
}
"""

# The regression: the entry is accepted, then dropped; the visitor sees the form again.
DROPS = r"""
function tma_contact_handle( $entry ) {
}
"""

ACTIVATE_SCRIPT = """<?php
$_SERVER += array( 'HTTP_HOST' => 'localhost', 'REQUEST_URI' => '/', 'REQUEST_METHOD' => 'GET' );
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
if ( is_plugin_active( $argv[2] ) ) {
	echo "active\\n";
	exit( 0 );
}
$activated = activate_plugin( $argv[2] );
if ( is_wp_error( $activated ) ) {
	fwrite( STDERR, $activated->get_error_message() . "\\n" );
	exit( 1 );
}
echo "active\\n";
"""


def contact_plugin_files(version: str, sends: bool | None = None) -> dict[str, str]:
    """The plugin's files by path under wp-content/plugins; `sends` defaults to False only for
    BROKEN_VERSION."""
    if sends is None:
        sends = version != BROKEN_VERSION
    code = HEADER.format(version=version) + COMMON + (SENDS if sends else DROPS)
    return {CONTACT_FILE: code}


def install_contact_plugin(site: WordPressSite, version: str, sends: bool | None = None) -> None:
    """Write the plugin into the site and activate it (which creates the table). On a served
    site, wait until the pages come from the new code (PHP's opcache revalidates every 2 s)."""
    write_files(site.root / "wp-content/plugins", contact_plugin_files(version, sends))
    script = site.base / "activate-contact.php"
    script.write_text(ACTIVATE_SCRIPT)
    try:
        proc = subprocess.run(
            [PHP, str(script), str(site.root), CONTACT_FILE],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        script.unlink()
    if proc.returncode != 0 or "active" not in proc.stdout:
        raise RuntimeError(
            f"activating {CONTACT_PLUGIN} failed: {(proc.stdout + proc.stderr)[-2000:]}"
        )
    if site.process is not None:
        wait_for_served_version(site, version)


def served_version(site: WordPressSite) -> str | None:
    status, body = fetch(site.url + CONTACT_PATH)
    found = re.search(r'data-tma-contact="([^"]*)"', body)
    return found.group(1) if status == 200 and found else None


def wait_for_served_version(site: WordPressSite, version: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (served := served_version(site)) != version:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{site.url} serves {CONTACT_PLUGIN} {served}, not {version}")
        time.sleep(0.3)


def entries(site: WordPressSite) -> list[tuple[str, str]]:
    """(email, message) of every stored entry, oldest first."""
    output = site.sql(f"SELECT email, message FROM {TABLE} ORDER BY id")
    rows = (row.split("\t", 1) for row in output.splitlines())
    return [(email, message) for email, message in rows]


def count_entries(site: WordPressSite) -> int:
    output = site.sql(f"SELECT COUNT(*) FROM {TABLE}")
    return int(output.strip())


def add_entry(site: WordPressSite, email: str, message: str) -> None:
    """Store an entry directly, as a visitor's post would (user data written after a snapshot)."""
    quoted = [value.replace("\\", "\\\\").replace("'", "''") for value in (email, message)]
    site.sql(
        f"INSERT INTO {TABLE} (email, message, created_at) "
        f"VALUES ('{quoted[0]}', '{quoted[1]}', UTC_TIMESTAMP())"
    )


def contact_journey(
    site_url: str, email: str = "claire@example.invalid", message: str = "Bonjour"
) -> dict[str, Any]:
    """The journey check of the contact form, as an inventory would declare it."""
    return {
        "check": "journey",
        "name": "contact form",
        "steps": [
            {"url": site_url + CONTACT_PATH, "extract": {"token": TOKEN_PATTERN}},
            {
                "url": CONTACT_PATH,
                "method": "POST",
                "form": {"email": email, "message": message, "tma_token": "{token}"},
                "contains": CONFIRMATION,
            },
        ],
    }
