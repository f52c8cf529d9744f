"""The ISO code tables: read once from the package data file, with the types callers rely on."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

import orjson

from t360cli import codes

ROOT = Path(__file__).resolve().parents[1]


def test_tables_come_from_the_data_file_with_their_types() -> None:
    data = orjson.loads(files("t360cli").joinpath(codes.DATA_FILE).read_bytes())
    assert isinstance(codes.CURRENCIES, frozenset) and codes.CURRENCIES == set(data["currencies"])
    assert codes.COUNTRIES == [tuple(row) for row in data["countries"]]
    assert all(type(row) is tuple and len(row) == 3 for row in codes.COUNTRIES)
    assert codes.COUNTRY_ALIASES == data["country_aliases"]
    assert ("CI", "CIV", "Côte d'Ivoire") in codes.COUNTRIES  # UTF-8 read as such


def test_the_data_file_ships_in_the_wheel() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "data/*" in package_data["package-data"]["t360cli"]
    assert (ROOT / "t360cli" / codes.DATA_FILE).is_file()
