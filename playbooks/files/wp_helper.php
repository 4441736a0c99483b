<?php
/**
 * Reads and updates a WordPress site with WordPress's own code (tma_ops.stacks.wordpress).
 *
 * Usage: php wp_helper.php <command> <wordpress root> [arguments]   (or the script on stdin:
 *        php -- <command> <root> ...)
 *   inventory                                  core, plugins, themes, database versions
 *   install <kind> <slug> <zip> <version>      update one plugin, theme or core from a zip
 *   upgrade-db                                 WordPress's database upgrade, when it is due
 *
 * On success one JSON object goes to stdout; on failure one line goes to stderr, exit code 1.
 * WordPress runs with WP_INSTALLING: active plugins and the theme are not loaded, so a broken
 * plugin cannot stop its own replacement. HTTP requests are refused (no update checks, no call
 * home): everything comes from the zip archive.
 *
 * install keeps a copy of the component (`.tma-old-<slug>` beside it, `.tma-old-wordpress` in
 * the root for core) until the new version is in place and reads as <version>; on any failure
 * the copy is put back (for core: wp-admin, wp-includes and the root's files; a file that only
 * the failed release added to the root stays). A run that finds a copy left by an interrupted
 * install puts it back first, then installs again.
 */

const TMA_KEEP_PREFIX = '.tma-old-';
const TMA_CORE_ENTRIES = array( 'wp-admin', 'wp-includes' );
const TMA_CORE_KEEP_FILES = array( 'wp-config.php', '.htaccess', '.maintenance' );

$tma_done = false;
$tma_stdout = fopen( 'php://stdout', 'w' );
$tma_stderr = fopen( 'php://stderr', 'w' );

/** One line on stderr and exit 1. */
function tma_fail( $message ) {
	global $tma_done, $tma_stderr;
	$tma_done = true;
	while ( ob_get_level() > 0 ) {
		ob_end_clean();
	}
	fwrite( $tma_stderr, tma_one_line( $message ) . "\n" );
	exit( 1 );
}

function tma_one_line( $text ) {
	$flat = trim( preg_replace( '/\s+/', ' ', html_entity_decode( strip_tags( (string) $text ), ENT_QUOTES, 'UTF-8' ) ) );
	return strlen( $flat ) > 400 ? substr( $flat, 0, 397 ) . '...' : $flat;
}

/** The message of a page WordPress printed before it stopped (wp_die's, for one). */
function tma_page_text( $html ) {
	if ( preg_match( '#<div class="wp-die-message">(.*?)</div>#s', $html, $m ) ) {
		return tma_one_line( $m[1] );
	}
	return tma_one_line( preg_replace( '#<(head|style|script)\b.*?</\1>#si', '', $html ) );
}

function tma_print( $data ) {
	global $tma_done, $tma_stdout;
	$tma_done = true;
	while ( ob_get_level() > 0 ) {
		ob_end_clean();
	}
	fwrite( $tma_stdout, json_encode( $data, JSON_UNESCAPED_SLASHES ) . "\n" );
	exit( 0 );
}

/** WordPress may stop the process itself (wp_die, a fatal error): say why in one line. */
function tma_on_shutdown() {
	global $tma_done, $tma_stderr;
	if ( $tma_done ) {
		return;
	}
	$output = '';
	while ( ob_get_level() > 0 ) {
		$output = ob_get_clean() . $output;
	}
	$error = error_get_last();
	$fatal = $error && in_array( $error['type'], array( E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR ), true );
	$reason = $fatal ? "{$error['message']} in {$error['file']}:{$error['line']}" : tma_page_text( $output );
	fwrite( $tma_stderr, 'WordPress stopped: ' . tma_one_line( $reason ?: 'no reason given' ) . "\n" );
	exit( 1 );
}

/** Refuses every HTTP request WordPress makes while the helper runs. */
function tma_refuse_http() {
	return new WP_Error( 'http_request_refused', 'HTTP requests are off while tma-ops updates' );
}

function tma_same_version( $a, $b ) {
	$strip = function ( $v ) {
		return preg_replace( '/(\.0+)+$/', '', trim( (string) $v ) );
	};
	return $a === $b || $strip( $a ) === $strip( $b );
}

// ---------------------------------------------------------------------------------------------
// Reading the site.

function tma_plugin_slug( $file ) {
	return false === strpos( $file, '/' ) ? basename( $file, '.php' ) : dirname( $file );
}

/** slug => [file, version, active] of every plugin, the first plugin file of a folder wins. */
function tma_plugins() {
	wp_clean_plugins_cache( false );
	$plugins = array();
	foreach ( get_plugins() as $file => $data ) {
		$slug = tma_plugin_slug( $file );
		if ( ! isset( $plugins[ $slug ] ) ) {
			$plugins[ $slug ] = array(
				'file'    => $file,
				'version' => (string) $data['Version'],
				'active'  => is_plugin_active( $file ),
			);
		}
	}
	return $plugins;
}

/** slug => version of every theme. */
function tma_themes() {
	wp_clean_themes_cache( false );
	$themes = array();
	foreach ( wp_get_themes( array( 'errors' => null ) ) as $slug => $theme ) {
		$themes[ $slug ] = (string) $theme->get( 'Version' );
	}
	return $themes;
}

/** The core version and database version the files hold now (not those loaded at start). */
function tma_core_versions() {
	$source = file_get_contents( ABSPATH . WPINC . '/version.php' );
	$version = preg_match( '/\$wp_version\s*=\s*\'([^\']+)\'/', $source, $m ) ? $m[1] : '';
	$db_version = preg_match( '/\$wp_db_version\s*=\s*(\d+)/', $source, $m ) ? (int) $m[1] : 0;
	return array( $version, $db_version );
}

function tma_installed_version( $kind, $slug ) {
	if ( 'core' === $kind ) {
		return tma_core_versions()[0];
	}
	if ( 'plugin' === $kind ) {
		$plugins = tma_plugins();
		return isset( $plugins[ $slug ] ) ? $plugins[ $slug ]['version'] : null;
	}
	$themes = tma_themes();
	return isset( $themes[ $slug ] ) ? $themes[ $slug ] : null;
}

/** The component's live path (core: the root) and where its copy is kept during an install. */
function tma_paths( $kind, $slug ) {
	if ( 'core' === $kind ) {
		return array( rtrim( ABSPATH, '/' ), ABSPATH . TMA_KEEP_PREFIX . 'wordpress' );
	}
	$parent = 'plugin' === $kind ? WP_PLUGIN_DIR : get_theme_root( $slug );
	$live = "$parent/$slug";
	if ( 'plugin' === $kind && ! file_exists( $live ) && file_exists( "$live.php" ) ) {
		$live = "$live.php"; // a single-file plugin
	}
	return array( $live, "$parent/" . TMA_KEEP_PREFIX . $slug );
}

function tma_inventory() {
	global $wpdb;
	list( $version, $db_version ) = tma_core_versions();
	$plugins = array();
	foreach ( tma_plugins() as $slug => $plugin ) {
		$plugins[] = array( 'slug' => $slug, 'version' => $plugin['version'], 'active' => $plugin['active'] );
	}
	$themes = array();
	foreach ( tma_themes() as $slug => $theme_version ) {
		$themes[] = array( 'slug' => $slug, 'version' => $theme_version );
	}
	$interrupted = array();
	$kept_copies = array();
	foreach ( array( WP_PLUGIN_DIR . '/', get_theme_root() . '/', ABSPATH ) as $parent ) {
		$kept_copies = array_merge( $kept_copies, glob( $parent . TMA_KEEP_PREFIX . '*' ) ?: array() );
	}
	foreach ( $kept_copies as $kept ) {
		$interrupted[] = preg_replace( '/\.partial$/', '', substr( basename( $kept ), strlen( TMA_KEEP_PREFIX ) ) );
	}
	$stored = $wpdb->get_var( "SELECT option_value FROM $wpdb->options WHERE option_name = 'db_version'" );
	return array(
		'core'        => array(
			'version'           => $version,
			'db_version'        => $db_version,
			'stored_db_version' => (int) $stored,
		),
		'plugins'     => $plugins,
		'themes'      => $themes,
		'interrupted' => $interrupted,
		'opcache'     => array(
			'enable'              => (bool) ini_get( 'opcache.enable' ),
			'validate_timestamps' => (bool) ini_get( 'opcache.validate_timestamps' ),
			'revalidate_freq'     => (int) ini_get( 'opcache.revalidate_freq' ),
		),
	);
}

// ---------------------------------------------------------------------------------------------
// Keeping and putting back a copy of a component.

function tma_remove( $path ) {
	if ( is_link( $path ) || is_file( $path ) ) {
		return unlink( $path );
	}
	if ( ! is_dir( $path ) ) {
		return true;
	}
	foreach ( scandir( $path ) as $entry ) {
		if ( '.' !== $entry && '..' !== $entry && ! tma_remove( "$path/$entry" ) ) {
			return false;
		}
	}
	return rmdir( $path );
}

function tma_copy( $from, $to ) {
	if ( is_link( $from ) ) {
		return symlink( readlink( $from ), $to );
	}
	if ( is_file( $from ) ) {
		return copy( $from, $to ) && chmod( $to, fileperms( $from ) & 07777 ) && touch( $to, filemtime( $from ) );
	}
	if ( ! mkdir( $to, fileperms( $from ) & 07777 ) ) {
		return false;
	}
	foreach ( scandir( $from ) as $entry ) {
		if ( '.' !== $entry && '..' !== $entry && ! tma_copy( "$from/$entry", "$to/$entry" ) ) {
			return false;
		}
	}
	return true;
}

/** The entries of the root that a core update replaces: wp-admin, wp-includes, root files. */
function tma_core_entries( $root ) {
	$entries = TMA_CORE_ENTRIES;
	foreach ( scandir( $root ) as $entry ) {
		if ( is_file( "$root/$entry" ) && ! in_array( $entry, TMA_CORE_KEEP_FILES, true ) ) {
			$entries[] = $entry;
		}
	}
	return $entries;
}

/** Copy the live component to $keep, whole or not at all (a partial copy is never kept). */
function tma_keep_copy( $kind, $live, $keep ) {
	$partial = "$keep.partial";
	tma_remove( $partial );
	if ( 'core' === $kind ) {
		$ok = mkdir( $partial, 0755 );
		foreach ( tma_core_entries( $live ) as $entry ) {
			$ok = $ok && tma_copy( "$live/$entry", "$partial/$entry" );
		}
	} else {
		$ok = tma_copy( $live, $partial );
	}
	if ( ! $ok || ! rename( $partial, $keep ) ) {
		tma_remove( $partial );
		tma_fail( "cannot keep a copy of $live in $keep: " . ( error_get_last()['message'] ?? 'copy failed' ) );
	}
}

/** Put the kept copy back in place of the live component, then forget the copy. */
function tma_put_back( $kind, $live, $keep ) {
	if ( 'core' === $kind ) {
		foreach ( scandir( $keep ) as $entry ) {
			if ( '.' !== $entry && '..' !== $entry ) {
				tma_remove( "$live/$entry" );
				rename( "$keep/$entry", "$live/$entry" );
			}
		}
		tma_remove( "$live/.maintenance" ); // left by an interrupted core update
		return tma_remove( $keep );
	}
	return tma_remove( $live ) && rename( $keep, $live );
}

// ---------------------------------------------------------------------------------------------
// Installing.

/** The archive must hold exactly the component's folder (core: wordpress/). */
function tma_check_archive( $kind, $slug, $zip ) {
	if ( ! class_exists( 'ZipArchive' ) ) {
		tma_fail( 'the PHP zip extension is missing (php-zip): archives cannot be checked' );
	}
	$archive = new ZipArchive();
	if ( true !== $archive->open( $zip, ZipArchive::RDONLY ) ) {
		tma_fail( basename( $zip ) . ': not a readable zip archive' );
	}
	$tops = array();
	for ( $i = 0; $i < $archive->numFiles; $i++ ) {
		$name = $archive->getNameIndex( $i );
		if ( 0 !== strpos( $name, '__MACOSX/' ) ) {
			$tops[ explode( '/', $name )[0] ] = true;
		}
	}
	$archive->close();
	$expected = 'core' === $kind ? 'wordpress' : $slug;
	if ( array( $expected ) !== array_keys( $tops ) ) {
		$found = implode( ', ', array_keys( $tops ) ) ?: 'nothing';
		tma_fail( basename( $zip ) . ": expected one top-level folder '$expected/', found $found" );
	}
}

/** What WordPress's core update API would offer for this archive. */
function tma_core_offer( $zip, $version ) {
	return (object) array(
		'response'        => 'upgrade',
		'current'         => $version,
		'version'         => $version,
		'locale'          => get_locale(),
		'partial_version' => '',
		'new_bundled'     => '',
		'packages'        => (object) array(
			'full'        => $zip,
			'no_content'  => false,
			'new_bundled' => false,
			'partial'     => false,
			'rollback'    => false,
		),
	);
}

/** Run WordPress's upgrader; null on success, else the upgrader's reason. */
function tma_run_upgrader( $kind, $zip, $version ) {
	$skin = new Automatic_Upgrader_Skin();
	$options = array( 'overwrite_package' => true );
	if ( 'plugin' === $kind ) {
		$result = ( new Plugin_Upgrader( $skin ) )->install( $zip, $options );
	} elseif ( 'theme' === $kind ) {
		$result = ( new Theme_Upgrader( $skin ) )->install( $zip, $options );
	} else {
		$upgrader = new Core_Upgrader( $skin );
		$result = $upgrader->upgrade( tma_core_offer( $zip, $version ), array( 'pre_check_md5' => false ) );
	}
	// The upgrader leaves its working copy behind when it refuses a package.
	tma_remove( WP_CONTENT_DIR . '/upgrade/' . basename( $zip, '.zip' ) );
	if ( true === $result || ( 'core' === $kind && is_string( $result ) ) ) {
		return null;
	}
	$messages = $skin->get_upgrade_messages();
	if ( is_wp_error( $result ) ) {
		$messages[] = $result->get_error_message() . ' ' . implode( ' ', (array) $result->get_error_data() );
	}
	return implode( ' ', array_slice( array_unique( array_filter( array_map( 'tma_one_line', $messages ) ) ), -3 ) )
		?: 'the upgrader gave no reason';
}

function tma_install( $kind, $slug, $zip, $version ) {
	if ( ! in_array( $kind, array( 'core', 'plugin', 'theme' ), true ) ) {
		tma_fail( "unknown component kind '$kind': expected core, plugin or theme" );
	}
	list( $live, $keep ) = tma_paths( $kind, $slug );
	tma_remove( "$keep.partial" );
	if ( file_exists( $keep ) ) {
		tma_put_back( $kind, $live, $keep ) || tma_fail( "cannot put back $keep, left by an interrupted install" );
	}
	$before = tma_installed_version( $kind, $slug );
	if ( null === $before ) {
		tma_fail( "$kind $slug is not installed" );
	}
	if ( tma_same_version( $before, $version ) ) {
		return array( 'changed' => false, 'version' => $before );
	}
	if ( ! is_file( $zip ) ) {
		tma_fail( "$zip: archive not found" );
	}
	tma_check_archive( $kind, $slug, $zip );
	tma_keep_copy( $kind, $live, $keep );
	$reason = tma_run_upgrader( $kind, $zip, $version );
	$after = null === $reason ? tma_installed_version( $kind, $slug ) : null;
	if ( null === $reason && ! tma_same_version( (string) $after, $version ) ) {
		$reason = basename( $zip ) . " holds $slug " . ( $after ?? 'nothing' ) . ", expected $version";
	}
	if ( null !== $reason ) {
		$restored = tma_put_back( $kind, $live, $keep ) ? "$before was put back" : "$before could NOT be put back from $keep";
		tma_fail( "$kind $slug $before -> $version: $reason ($restored)" );
	}
	tma_remove( $keep );
	return array( 'changed' => true, 'from' => $before, 'to' => $after );
}

function tma_upgrade_database() {
	global $wpdb;
	list( , $db_version ) = tma_core_versions();
	$stored = (int) $wpdb->get_var( "SELECT option_value FROM $wpdb->options WHERE option_name = 'db_version'" );
	if ( $stored >= $db_version ) {
		return array( 'upgraded' => false, 'db_version' => $stored );
	}
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	wp_upgrade();
	wp_cache_delete( 'alloptions', 'options' );
	$now = (int) $wpdb->get_var( "SELECT option_value FROM $wpdb->options WHERE option_name = 'db_version'" );
	if ( $now !== $db_version ) {
		tma_fail( "the database upgrade stopped at db_version $now, expected $db_version" );
	}
	return array( 'upgraded' => true, 'from' => $stored, 'to' => $now );
}

// ---------------------------------------------------------------------------------------------
// Main, in the global scope: wp-config.php and wp-settings.php set globals.

$tma_args = array_slice( $argv, 1 );
$tma_command = $tma_args[0] ?? '';
$tma_root = $tma_args[1] ?? '';
$tma_arity = array( 'inventory' => 2, 'install' => 6, 'upgrade-db' => 2 );
if ( ! isset( $tma_arity[ $tma_command ] ) || count( $tma_args ) !== $tma_arity[ $tma_command ] ) {
	tma_fail( 'usage: wp_helper.php inventory|upgrade-db <root> | install <root> <kind> <slug> <zip> <version>' );
}
if ( ! is_file( "$tma_root/wp-load.php" ) ) {
	tma_fail( "$tma_root: not a WordPress root (no wp-load.php)" );
}

register_shutdown_function( 'tma_on_shutdown' );
ob_start();
define( 'WP_INSTALLING', true );
$_SERVER += array(
	'HTTP_HOST'       => 'localhost',
	'SERVER_NAME'     => 'localhost',
	'REQUEST_URI'     => '/',
	'REQUEST_METHOD'  => 'GET',
	'SERVER_PROTOCOL' => 'HTTP/1.1',
);
// Hooks set before WordPress loads (WP_Hook::build_preinitialized_hooks).
$wp_filter = array(
	'pre_http_request' => array( 1 => array( array( 'function' => 'tma_refuse_http', 'accepted_args' => 1 ) ) ),
);
chdir( $tma_root );
require $tma_root . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/admin.php';
require_once ABSPATH . 'wp-admin/includes/class-wp-upgrader.php';
if ( ! defined( 'FS_METHOD' ) ) {
	define( 'FS_METHOD', 'direct' );
}

if ( 'inventory' === $tma_command ) {
	tma_print( tma_inventory() );
} elseif ( 'upgrade-db' === $tma_command ) {
	tma_print( tma_upgrade_database() );
} else {
	tma_print( tma_install( $tma_args[2], $tma_args[3], $tma_args[4], $tma_args[5] ) );
}
