"""The pure parts of the MariaDB/MySQL shadow restore: scratch names, leftovers, the swap script,
and what a failed step means."""

from __future__ import annotations

import re

import pytest

from tma_ops.dbs.mysql_shadow import (
    NOT_ONLY_TABLES_PATTERNS,
    ScratchNames,
    leftover_scratch,
    out_of_room,
    refused,
    scratch_names,
    swap_script,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("database", "directory", "shadow"),
    [
        ("site", "tma-mysql-restore.AbC123xyZ0", "site__tma_abc123xyz0"),
        ("wp-prod", "tma-mysql-restore.0000000000", "wp-prod__tma_0000000000"),
        ("d" * 44, "tma-mysql-restore.abcdefghij", "d" * 44 + "__tma_abcdefghij"),
        ("d" * 45, "tma-mysql-restore.abcdefghij", None),  # its _old would be 65 characters
        ("é" * 44, "tma-mysql-restore.abcdefghij", "é" * 44 + "__tma_abcdefghij"),
    ],
)
def test_scratch_names_derive_from_the_live_name_and_the_directory(
    database: str, directory: str, shadow: str | None
) -> None:
    names = scratch_names(database, directory)
    assert names == (ScratchNames(shadow, shadow + "_old") if shadow else None)
    if names is not None:
        assert len(names.old) <= 64


@pytest.mark.parametrize("directory", ["tma-mysql-restore.", "tma-mysql-restore.ab/cd", "x.a b"])
def test_a_directory_that_is_no_restore_directory_is_refused(directory: str) -> None:
    with pytest.raises(ValueError, match="not a restore directory"):
        scratch_names("site", directory)


@pytest.mark.parametrize(
    ("schemas", "expected"),
    [
        ([], []),
        (["site", "site__tma_abcdefghij", "site__tma_abcdefghij_old"],
         ["site__tma_abcdefghij", "site__tma_abcdefghij_old"]),
        (["site_2__tma_abcdefghij", "site__tma_abcdefghij_older", "site__tma_abcdefghij_"], []),
        (["SITE__tma_abcdefghij", "site__TMA_ABCDEFGHIJ_OLD"],  # lower_case_table_names
         ["SITE__tma_abcdefghij", "site__TMA_ABCDEFGHIJ_OLD"]),
        (["xsite__tma_abcdefghij", "site__tma_abc", "site__tma_abcdefghij2"],
         ["site__tma_abcdefghij2"]),
        (["other__tma_abcdefghij", "site__tma_"], []),
    ],
)  # fmt: skip
def test_leftovers_are_the_scratch_databases_of_this_database_only(
    schemas: list[str], expected: list[str]
) -> None:
    assert leftover_scratch("site", schemas) == expected


def test_leftovers_of_a_name_with_pattern_characters_are_matched_literally() -> None:
    schemas = ["a.b__tma_abcdefghij", "aXb__tma_abcdefghij", "a.b__tma_abcdefghij_old"]
    assert leftover_scratch("a.b", schemas) == ["a.b__tma_abcdefghij", "a.b__tma_abcdefghij_old"]


@pytest.mark.parametrize(
    ("detail", "is_refused"),
    [
        ("ERROR 1044 (42000) at line 1: Access denied for user 'u'@'%' to database 'x'", True),
        ("ERROR 1142 (42000): CREATE command denied to user 'u'@'%' for table 'x'", True),
        ("ERROR 1227 (42000): Access denied; you need the SUPER privilege", True),
        ("ERROR 1007 (HY000) at line 1: Can't create database 'x'; database exists", False),
        ("ERROR 2013 (HY000): Lost connection to server during query", False),
        ("", False),
    ],
)
def test_only_a_privilege_error_means_refused(detail: str, is_refused: bool) -> None:
    assert refused(detail) is is_refused


@pytest.mark.parametrize(
    ("detail", "no_room"),
    [
        ("ERROR 1114 (HY000) at line 40: The table 'wp_posts' is full", True),
        ("ERROR 1021 (HY000): Disk full (./x); waiting for someone to free some space...", True),
        ("ERROR 3 (HY000): Error writing file './x/t.frm' (Errcode: 28 \"No space left\")", True),
        ("ERROR 1064 (42000) at line 12: You have an error in your SQL syntax", False),
        ("ERROR 2013 (HY000) at line 7: Lost connection to server during query", False),
    ],
)
def test_a_load_that_ran_out_of_room_is_told_apart(detail: str, no_room: bool) -> None:
    assert out_of_room(detail) is no_room


NAMES = ScratchNames("site__tma_abcdefghij", "site__tma_abcdefghij_old")


def test_the_swap_drops_the_live_objects_then_renames_every_table_at_once() -> None:
    live = [
        ("TABLE", "posts"),
        ("VIEW", "recent"),
        ("TABLE", "gone`odd"),
        ("TRIGGER", "lower_tag"),
        ("PROCEDURE", "count_posts"),
        ("FUNCTION", "slug"),
        ("EVENT", "purge"),
        ("VIEW", "drafts"),
    ]
    script = swap_script("site", NAMES, live, ["posts", "new table"]).decode()

    assert script == (
        "SET FOREIGN_KEY_CHECKS = 0;\n"
        "DROP VIEW IF EXISTS `recent`, `drafts`;\n"
        "DROP TRIGGER IF EXISTS `lower_tag`;\n"
        "DROP PROCEDURE IF EXISTS `count_posts`;\n"
        "DROP FUNCTION IF EXISTS `slug`;\n"
        "DROP EVENT IF EXISTS `purge`;\n"
        "RENAME TABLE `site`.`posts` TO `site__tma_abcdefghij_old`.`posts`,\n"
        "  `site`.`gone``odd` TO `site__tma_abcdefghij_old`.`gone``odd`,\n"
        "  `site__tma_abcdefghij`.`posts` TO `site`.`posts`,\n"
        "  `site__tma_abcdefghij`.`new table` TO `site`.`new table`;\n"
    )
    assert script.count("RENAME TABLE") == 1


@pytest.mark.parametrize(
    ("live", "shadow", "renames"),
    [
        ([], [], False),  # an empty dump over an empty database: nothing to move
        ([("TABLE", "t")], [], True),  # an empty dump empties the live database
        ([("VIEW", "v")], ["t"], True),
    ],
)
def test_the_swap_renames_only_when_there_is_a_table(
    live: list[tuple[str, str]], shadow: list[str], renames: bool
) -> None:
    assert ("RENAME TABLE" in swap_script("site", NAMES, live, shadow).decode()) is renames


@pytest.mark.parametrize(
    ("line", "matches"),
    [
        ("DELIMITER ;;", True),
        ("/*!50001 CREATE VIEW `v` AS SELECT", True),
        ("/*!50001 CREATE ALGORITHM=UNDEFINED */", True),
        ("  CONSTRAINT `tags_ibfk_1` FOREIGN KEY (`item_id`) REFERENCES `items` (`id`)", True),
        ("  CONSTRAINT `positive` CHECK (`price` > 0)", False),
        ("CREATE TABLE `items` (", False),
        ("(2,'DELIMITER ;; /*!50001 CREATE VIEW'),", False),
        ("INSERT INTO `posts` VALUES (1,'  CONSTRAINT x FOREIGN KEY ')", False),
        ("/*!50001 DROP VIEW IF EXISTS `v`*/;", False),
    ],
)
def test_the_quick_look_finds_what_keeps_a_dump_off_the_shadow_path(
    line: str, matches: bool
) -> None:
    found = any(re.search(pattern, line) for pattern in NOT_ONLY_TABLES_PATTERNS)
    assert found is matches
