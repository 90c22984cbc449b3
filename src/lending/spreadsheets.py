"""Cells of the CSV files the app writes for people to open in a spreadsheet."""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ (or a tab or return) as formulas (OWASP's
    CSV injection); such text is quoted with a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
