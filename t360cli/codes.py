"""ISO 4217 currency codes and ISO 3166-1 countries, as plain data.

The tables live in `t360cli/data/codes.json` (shipped as package data) and are read once,
at import. They were generated once from pycountry 26.2.16 (in a scratch venv; pycountry
is not a dependency). CURRENCIES leaves out XTS (testing) and XXX (no currency).
COUNTRY_ALIASES holds lower-case English forms that are not the ISO short name:
pycountry's common and official names plus a short hand-written list of unambiguous usual forms.
"""

from __future__ import annotations

from importlib.resources import files

import orjson

DATA_FILE = "data/codes.json"


def _strings(value: object, what: str) -> list[str]:
    """`value` as a list of strings, or a ValueError naming `what`."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{DATA_FILE}: {what} must be a list of strings")
    return value


def _load() -> tuple[frozenset[str], list[tuple[str, str, str]], dict[str, str]]:
    """Read and check the tables: (currencies, countries, country aliases)."""
    tables = orjson.loads(files("t360cli").joinpath(DATA_FILE).read_bytes())
    currencies = frozenset(_strings(tables["currencies"], "currencies"))
    countries: list[tuple[str, str, str]] = []
    for row in tables["countries"]:
        alpha2, alpha3, name = _strings(row, "each country")
        countries.append((alpha2, alpha3, name))
    aliases = tables["country_aliases"]
    if not isinstance(aliases, dict) or not all(isinstance(code, str) for code in aliases.values()):
        raise ValueError(f"{DATA_FILE}: country_aliases must map names to alpha-2 codes")
    return currencies, countries, {str(alias): str(code) for alias, code in aliases.items()}


CURRENCIES: frozenset[str]
# (alpha-2, alpha-3, English short name)
COUNTRIES: list[tuple[str, str, str]]
COUNTRY_ALIASES: dict[str, str]
CURRENCIES, COUNTRIES, COUNTRY_ALIASES = _load()
