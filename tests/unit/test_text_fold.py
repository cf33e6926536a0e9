"""Folding: case, compatibility forms and accents go; the letters NFD leaves whole are spelled out."""

from __future__ import annotations

import pytest

from transform.text import fold


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Genève, Ｔｏｋｙｏ", "geneve, tokyo"),
        ("Straße", "strasse"),
        ("Øresund, Łódź, Æbleø, Œuvre, ıi, Þorn, Đakovo", "oresund, lodz, aebleo, oeuvre, ii, thorn, dakovo"),
        ("«Café» — déjà vu", "«cafe» — deja vu"),  # non-ASCII, none of the spelled-out letters
        ("Plain ASCII", "plain ascii"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded
