"""JSON Lines and JSON array readers: numbers kept as written in the source."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from typing import cast

import numpy as np
import numpy.typing as npt

from t360cli.errors import InputError
from t360cli.readers.base import (
    MAX_LINE,
    UNDECODED,
    BadRow,
    Chunk,
    Source,
    SourceOptions,
    _decode_error,
    _open_text,
    _text_table,
    bounded_lines,
    text_encoding,
    undecoded_reason,
)


class _Num(str):
    """The exact source text of a JSON number."""

    __slots__ = ()


JsonObject = dict[str, object]  # one record: strings, _Num, None, booleans, nested lists and dicts
Item = tuple[int, JsonObject | BadRow]  # (line or record number, the record or why it is not one)

_DECODER = json.JSONDecoder(parse_float=_Num, parse_int=_Num)
_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
MAX_DEPTH = 64  # a record nested deeper is not data (and would strain the recursive helpers)


def _record_problem(text: str, obj: object) -> str | None:
    """Why a decoded record cannot be sent: a lone surrogate (`"\\ud800"`), or nesting too deep."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(obj) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    if _SURROGATE_ESCAPE.search(text) and UNDECODED.search(json.dumps(obj, ensure_ascii=False)):
        return "holds a lone surrogate (such as \\ud800), which cannot be sent as UTF-8"
    return None


def _depth(obj: object) -> int:
    """Nesting depth of a decoded value, without recursion."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            todo.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _compact(value: object) -> str:
    """Compact JSON text of a nested value, numbers as written in the source."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _compact(x) for k, x in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(x) for x in value) + "]"
    if type(value) is _Num:
        return value
    return json.dumps(value, ensure_ascii=False)


def _jtext(value: object) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return _compact(value)


def _blank(obj: JsonObject) -> bool:
    """True when every value is null or "" (any() settles the usual case in C)."""
    return not any(obj.values()) and all(v is None or v == "" for v in obj.values())


def _json_chunk(src: Source, rows: list[JsonObject], lines: list[int], bad: list[BadRow]) -> Chunk:
    names = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
    cols: list[list[str]] = []
    numeric: dict[str, npt.NDArray[np.bool_]] = {}
    for k in names:
        col = [r.get(k, "") for r in rows]
        types = set(map(type, col))
        numeric[k] = (
            np.fromiter((type(v) is _Num for v in col), bool, len(col)) if _Num in types else np.zeros(len(col), bool)
        )
        if types <= {str, _Num}:
            cols.append(cast(list[str], col))  # every cell is text already
        else:
            cols.append([v if isinstance(v, str) else _jtext(v) for v in col])
    return Chunk(src, names, _text_table(names, cols), np.array(lines, np.int64), numeric, bad)


def _json_chunks(src: Source, objs: Iterator[Item], size: int) -> Iterator[Chunk]:
    rows: list[JsonObject] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    for no, obj in objs:
        if isinstance(obj, BadRow):
            bad.append(obj)
        elif not _blank(obj):
            rows.append(obj)
            lines.append(no)
            if len(rows) == size:
                yield _json_chunk(src, rows, lines, bad)
                rows, lines, bad = [], [], []
    if rows or bad:
        yield _json_chunk(src, rows, lines, bad)


def _jsonl_objects(src: Source, opts: SourceOptions) -> Iterator[Item]:
    """(line, object) per non-blank line; a BadRow in place of a line that is not a JSON object."""
    enc = text_encoding(src.path, opts.encoding)
    with _open_text(src, enc, "surrogateescape") as f:
        for no, text in enumerate(bounded_lines(f, src.name), 1):
            if not text.strip():
                continue
            if UNDECODED.search(text):
                at = UNDECODED.search(text)
                col = at.start() + 1 if at else 0
                yield no, BadRow(no, undecoded_reason(text, enc, f"column {col}") or "not valid text", {})
                continue
            try:
                obj = _DECODER.decode(text)
            except json.JSONDecodeError as e:
                yield no, BadRow(no, f"not valid JSON: {e.msg} at column {e.colno}", {})
                continue
            except RecursionError:
                yield no, BadRow(no, "not valid JSON: nested too deeply", {})
                continue
            if type(obj) is not dict:
                yield no, BadRow(no, f"not a JSON object but {_kind(obj)}", {})
                continue
            why = _record_problem(text, obj)
            yield no, (BadRow(no, why, {}) if why else obj)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if type(value) is _Num:
        return "a number"
    return "a string" if isinstance(value, str) else "null" if value is None else "a boolean"


def _read_jsonl(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    return _json_chunks(src, _jsonl_objects(src, opts), size)


def _read_json(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    return _json_chunks(src, _json_objects(src, opts), size)


def _json_objects(src: Source, opts: SourceOptions) -> Iterator[Item]:
    enc = text_encoding(src.path, opts.encoding)
    try:
        with _open_text(src, enc) as f:
            yield from _JsonArray(f, src.name)
    except UnicodeDecodeError as e:
        raise _decode_error(src, enc) from e


class _JsonArray:
    """Streams (1-based index, object) from a top-level JSON array without loading the file."""

    def __init__(self, stream: io.TextIOBase, name: str) -> None:
        self.stream, self.name, self.buf, self.pos, self.eof = stream, name, "", 0, False

    def _more(self) -> bool:
        block = "" if self.eof else self.stream.read(max(1 << 16, len(self.buf) - self.pos))
        self.eof = not block
        self.buf, self.pos = self.buf[self.pos :] + block, 0
        return bool(block)

    def _peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # `*` always matches
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _fail(self, what: str) -> InputError:
        return InputError(f"{self.name}: {what}.", "A .json source must be one array of objects: [{...}, {...}].")

    def __iter__(self) -> Iterator[Item]:
        if self._peek() != "[":
            raise self._fail("not a JSON array")
        self.pos += 1
        if self._peek() == "]":
            return
        for idx in itertools.count(1):
            start = self.pos
            obj = self._value(idx)
            if type(obj) is not dict:
                raise self._fail(f"record {idx} is {_kind(obj)}, not an object")
            why = _record_problem(self.buf[start : self.pos], obj)
            yield idx, (BadRow(idx, why, {}) if why else obj)
            c = self._peek()
            self.pos += 1
            if not c:
                raise self._fail(f"the file ends after record {idx}, without the closing ']' (is it truncated?)")
            if c == "]":
                if self._peek():
                    raise self._fail(f"unexpected text after the array's closing ']' (after record {idx})")
                return
            if c != ",":
                raise self._fail(f"expected ',' or ']' after record {idx}")

    def _value(self, idx: int) -> object:
        self._peek()
        while True:
            try:
                obj, self.pos = _DECODER.raw_decode(self.buf, self.pos)
                return obj
            except RecursionError as e:
                raise self._fail(f"record {idx} is nested too deeply") from e
            except json.JSONDecodeError as e:
                cut = e.pos >= len(self.buf) - 16 or e.msg.startswith("Unterminated string")
                if cut and len(self.buf) - self.pos > MAX_LINE:
                    raise self._fail(f"record {idx} is larger than 16 MiB") from e
                at_end = e.pos >= len(self.buf) - 1 or e.msg.startswith("Unterminated")
                if cut and self._more():
                    continue
                if at_end:
                    raise self._fail(f"the file ends inside record {idx} (is it truncated?)") from e
                raise self._fail(f"record {idx} is not valid JSON: {e.msg}") from e
