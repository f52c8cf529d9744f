"""Parquet reader: typed columns turned into text, a mask of numeric cells."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.errors import InputError
from t360cli.readers.base import Chunk, Source, SourceOptions, _check_names, float_column, is_gzipped

MAX_GUNZIPPED = 2 << 30  # a .parquet.gz is gunzipped to a temporary file of at most 2 GiB (a gzip bomb stops here)


def _gunzip_to(src: Source, out: IO[bytes]) -> None:
    copied = 0
    with gzip.open(src.path, "rb") as gunzipped:
        while block := gunzipped.read(1 << 20):
            copied += len(block)
            if copied > MAX_GUNZIPPED:
                raise InputError(
                    f"{src.name}: inflates to more than 2 GiB.",
                    "Give the .parquet file uncompressed (Parquet compresses its own columns).",
                )
            out.write(block)


class _parquet_file:
    """Context manager: a ParquetFile (a .parquet.gz is gunzipped to a temporary file first)."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.tmp: IO[bytes] | None = None
        self.pf: Any = None  # pyarrow.parquet.ParquetFile (pyarrow has no type stubs)

    def __enter__(self) -> Any:
        import pyarrow.parquet as pq

        target: Path | IO[bytes] = self.src.path
        if is_gzipped(self.src.path):
            self.tmp = tempfile.TemporaryFile()
            try:
                _gunzip_to(self.src, self.tmp)
            except BaseException:
                self.__exit__()
                raise
            self.tmp.seek(0)
            target = self.tmp
        try:
            self.pf = pq.ParquetFile(target)
        except (pa.ArrowException, ValueError, IndexError, OverflowError) as e:
            self.__exit__()
            raise InputError(f"{self.src.name}: not a readable Parquet file: {e}.") from e
        return self.pf

    def __exit__(self, *exc: object) -> None:
        for opened in (self.pf, self.tmp):
            if opened is not None:
                opened.close()


def _read_parquet(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    try:
        yield from _parquet_chunks(src, size)
    except (pa.ArrowException, ValueError, IndexError, OverflowError) as e:
        raise InputError(f"{src.name}: cannot read as Parquet: {e}.", "Check that the file is complete.") from e


def _parquet_chunks(src: Source, size: int) -> Iterator[Chunk]:
    with _parquet_file(src) as pf:
        names = _check_names(pf.schema_arrow.names, src, None)
        seen = 0
        for batch in pf.iter_batches(batch_size=size):
            texts, masks = zip(*(_pq_text(c) for c in batch.columns), strict=True) if batch.num_columns else ((), ())
            lines = np.arange(seen + 1, seen + 1 + batch.num_rows, dtype=np.int64)
            seen += batch.num_rows
            table = pa.Table.from_arrays(list(texts), names=names)
            keep = np.zeros(batch.num_rows, bool)
            for t in texts:
                keep |= pc.binary_length(t).to_numpy(zero_copy_only=False) > 0
            if not keep.any():
                continue
            yield Chunk(
                src,
                list(names),
                table.filter(pa.array(keep)),
                lines[keep],
                {k: m[keep] for k, m in zip(names, masks, strict=True)},
                [],
            )


def _pq_text(col: pa.Array) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    """A column as text ("" for null) and its mask of numeric cells."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    t = col.type
    if pa.types.is_floating(t):
        return float_column(col)
    numeric = pa.types.is_integer(t) or pa.types.is_decimal(t)
    if pa.types.is_timestamp(t):
        secs = pc.cast(pc.round_temporal(col, unit="second"), pa.timestamp("s", "UTC" if t.tz else None))
        text = pc.strftime(secs, format="%Y-%m-%d %H:%M:%S")
        text = pc.binary_join_element_wise(text, "+00:00", "") if t.tz else text
    elif pa.types.is_time(t):
        text = pc.utf8_slice_codeunits(pc.cast(col, pa.string()), 0, 8)
    elif pa.types.is_nested(t):
        text = pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in col.to_pylist()],
            pa.string(),
        )
    else:
        text = pc.cast(col, pa.string())
    mask = pc.is_valid(col).to_numpy(zero_copy_only=False) if numeric else np.zeros(len(col), bool)
    return pc.fill_null(text, ""), mask
