"""Numbers, percentages, dates and durations written the French or the English way."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tma_ops.report_text import (
    CATALOGUE,
    day,
    day_time,
    duration,
    hours,
    month_name,
    number,
    percent,
)

pytestmark = pytest.mark.unit
NB = "\u00a0"


@pytest.mark.parametrize(
    ("value", "lang", "decimals", "expected"),
    [
        (1234.5, "en", 1, "1,234.5"),
        (1234.5, "fr", 1, f"1{NB}234,5"),
        (5, "fr", 0, "5"),
        (1234567, "en", 0, "1,234,567"),
        (0.05, "fr", 2, "0,05"),
    ],
)
def test_numbers(value: float, lang: str, decimals: int, expected: str) -> None:
    assert number(value, lang, decimals) == expected


@pytest.mark.parametrize(
    ("value", "lang", "decimals", "expected"),
    [
        (99.8234, "fr", 2, f"99,82{NB}%"),
        (99.8234, "en", 2, "99.82%"),
        (99.5, "fr", 1, f"99,5{NB}%"),
        (100, "en", 0, "100%"),
    ],
)
def test_percentages(value: float, lang: str, decimals: int, expected: str) -> None:
    assert percent(value, lang, decimals) == expected


@pytest.mark.parametrize(
    ("moment", "lang", "expected"),
    [
        (date(2024, 5, 12), "fr", "12 mai 2024"),
        (date(2024, 5, 12), "en", "12 May 2024"),
        (date(2024, 8, 1), "fr", "1er août 2024"),
        (date(2024, 2, 1), "en", "1 February 2024"),
        (date(2024, 12, 31), "fr", "31 décembre 2024"),
    ],
)
def test_dates(moment: date, lang: str, expected: str) -> None:
    assert day(moment, lang) == expected


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("fr", "3 mai 2024 à 9 h 05"), ("en", "3 May 2024, 09:05")],
)
def test_date_and_time(lang: str, expected: str) -> None:
    assert day_time(datetime(2024, 5, 3, 9, 5), lang) == expected


@pytest.mark.parametrize(
    ("month", "lang", "expected"),
    [
        ("2024-05", "fr", "mai 2024"),
        ("2024-05", "en", "May 2024"),
        ("2026-02", "fr", "février 2026"),
    ],
)
def test_month_names(month: str, lang: str, expected: str) -> None:
    assert month_name(month, lang) == expected


@pytest.mark.parametrize(
    ("seconds", "lang", "expected"),
    [
        (0, "en", f"0{NB}s"),
        (0.164, "fr", f"0,2{NB}s"),
        (45, "en", f"45{NB}s"),
        (300, "fr", f"5{NB}min"),
        (3900, "en", f"1{NB}h 05{NB}min"),
        (90000, "fr", f"1{NB}j 1{NB}h"),
        (90000, "en", f"1{NB}d 1{NB}h"),
    ],
)
def test_durations(seconds: float, lang: str, expected: str) -> None:
    assert duration(seconds, lang) == expected


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [(2, "fr", f"2{NB}h"), (1.5, "fr", f"1,5{NB}h"), (1.25, "en", f"1.25{NB}h")],
)
def test_hours(value: float, lang: str, expected: str) -> None:
    assert hours(value, lang) == expected


def test_both_languages_have_every_label() -> None:
    assert set(CATALOGUE["fr"]) == set(CATALOGUE["en"])
    assert all(text.strip() for texts in CATALOGUE.values() for text in texts.values())
