"""SPEC 11 and 12: hostile and broken inputs end in rows, rejects or one InputError, never a traceback."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import random
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from t360cli import readers, yamlnodes
from t360cli.convert import check_format, parse_decimal, parse_integer
from t360cli.errors import InputError, MappingError, T360Error
from t360cli.readers import SourceOptions, read_chunks, read_header

DEFAULT = SourceOptions()


def read_all(path: Path, opts: SourceOptions = DEFAULT, chunk_rows: int = 50_000):
    chunks = list(read_chunks([path], opts, chunk_rows))
    rows = [r for c in chunks for r in c.table.to_pylist()]
    lines = [int(x) for c in chunks for x in c.lines]
    bad = [(b.line, b.reason) for c in chunks for b in c.bad]
    return rows, lines, bad


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return p


# --- 1. mapping files -------------------------------------------------------------------


def test_mapping_over_a_million_bytes_is_refused_reading_at_most_that(tmp_path):
    p = write(tmp_path, "m.yaml", b"kind: customers\n" + b"#" * 1_000_000)
    with pytest.raises(MappingError, match=r"m.yaml is larger than 1,000,000 bytes"):
        yamlnodes.load(p)
    fifo = tmp_path / "zeros"  # an endless stream stands for /dev/zero: only 1,000,001 bytes are read
    import threading

    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with open(fifo, "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
        except (BrokenPipeError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    with pytest.raises(MappingError, match="larger than 1,000,000 bytes"):
        yamlnodes.load(fifo)
    t.join(5)


@pytest.mark.parametrize("text", ["a: &x [1, 2]\nb: *x\n", "kind: &k customers\n"])
def test_yaml_anchors_and_aliases_are_refused_with_the_line(tmp_path, text):
    p = write(tmp_path, "m.yaml", text.encode())
    with pytest.raises(MappingError) as e:
        yamlnodes.load(p)
    assert "m.yaml, line 1: YAML anchors and aliases (&name, *name) are not allowed." in str(e.value)


def test_billion_laughs_is_refused(tmp_path):
    lol = 'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n'
    with pytest.raises(MappingError, match="anchors and aliases"):
        yamlnodes.load(write(tmp_path, "m.yaml", lol.encode()))


def test_mapping_not_utf8_says_save_as_utf8(tmp_path):
    with pytest.raises(MappingError) as e:
        yamlnodes.load(write(tmp_path, "m.yaml", b"kind: customers\nfields: {a: caf\xe9}\n"))
    assert str(e.value).endswith("m.yaml, line 2: not UTF-8 text (byte 0xE9). Save the mapping as UTF-8.")


def test_read_bounded_for_the_config(tmp_path):
    from t360cli.errors import UsageError

    with pytest.raises(UsageError, match="a config file is a short text file"):
        yamlnodes.read_bounded(write(tmp_path, "c.yaml", b"x" * 1_000_001), "config file", UsageError)
    assert yamlnodes.read_bounded(write(tmp_path, "c.yaml", b"x: 1\n"), "config file", UsageError) == b"x: 1\n"
    yamlnodes.refuse_aliases("a: 1\n", "c.yaml")


# --- 2. CSV -------------------------------------------------------------------------------


def test_csv_cut_mid_character_rejects_the_last_row(tmp_path):
    p = write(tmp_path, "cut.csv", "id,name\n1,José\n2,Zoë\n".encode()[:-2])
    rows, lines, bad = read_all(p)
    assert rows == [{"id": "1", "name": "José"}] and lines == [2]
    assert bad == [(3, "not valid UTF-8 (byte 0xC3 at column 2); set source.encoding")]


def test_csv_invalid_utf8_in_the_middle_of_a_big_file_rejects_only_that_row(tmp_path):
    body = b"".join(b"%d,abc\n" % i for i in range(100_000))
    p = write(tmp_path, "big.csv.gz", b"id,name\n" + body + b"x,caf\xe9\n" + body)
    rows, lines, bad = read_all(p, chunk_rows=30_000)
    assert len(rows) == 200_000 and bad == [(100_002, "not valid UTF-8 (byte 0xE9 at column 2); set source.encoding")]
    assert lines[100_000] == 100_003


@pytest.mark.parametrize(
    "data, opts",
    [
        (b"a,b\n1,2\n", SourceOptions(encoding="utf-16")),  # utf-16 declared, no BOM
        (bytes(random.Random(7).randrange(256) for _ in range(5000)), DEFAULT),
    ],
)
def test_csv_wrong_encoding_or_random_bytes_end_in_rows_or_one_sentence(tmp_path, data, opts):
    p = write(tmp_path, "r.csv", data)
    try:
        read_header(p, opts)
        read_all(p, opts)
    except InputError as e:
        assert "r.csv" in str(e) and "Traceback" not in str(e)


def test_a_line_over_16_mib_is_an_error_shorter_ones_are_read(tmp_path):
    p = write(tmp_path, "long.csv", b"a,b\n1," + b"x" * (3 << 20) + b"\n2,y\n")
    rows, lines, _ = read_all(p)
    assert lines == [2, 3] and len(rows[0]["b"]) == 3 << 20
    p = write(tmp_path, "flat.csv", b"x" * (17 << 20))
    with pytest.raises(InputError, match=r"flat.csv: the file has no line break in its first 16 MiB"):
        read_header(p, DEFAULT)
    p = write(tmp_path, "late.csv.gz", b"a,b\n1,2\n3," + b"y" * (17 << 20))
    with pytest.raises(InputError, match=r"late.csv.gz: line 3 is longer than 16 MiB"):
        read_all(p)


def test_nul_bytes_stay_in_their_cell(tmp_path):
    rows, _, bad = read_all(write(tmp_path, "n.csv", b"a,b\nx\0y,2\n"))
    assert rows == [{"a": "x\0y", "b": "2"}] and bad == []
    rows, _, bad = read_all(write(tmp_path, "n2.csv", b"a,b\nx\0y,2\n1,2,3\n"))  # the slow path too
    assert rows == [{"a": "x\0y", "b": "2"}] and bad == [(3, "3 cells, the header has 2")]


# --- 3. JSON ------------------------------------------------------------------------------


def test_jsonl_lone_surrogate_and_deep_nesting_are_rejects(tmp_path):
    deep = '{"a": ' + "[" * 100 + "]" * 100 + "}"
    text = '{"a": "ok"}\n{"a": "\\ud800"}\n' + deep + '\n{"a": "\\ud83d\\ude00"}\n' + "[" * 10_000 + "\n"
    rows, lines, bad = read_all(write(tmp_path, "s.jsonl", text.encode()))
    assert rows == [{"a": "ok"}, {"a": "😀"}] and lines == [1, 4]
    assert bad == [
        (2, "holds a lone surrogate (such as \\ud800), which cannot be sent as UTF-8"),
        (3, "nested more than 64 levels deep"),
        (5, "not valid JSON: nested too deeply"),
    ]


def test_json_array_deep_truncated_and_surrogate(tmp_path):
    with pytest.raises(InputError, match="record 1 is nested too deeply"):
        read_all(write(tmp_path, "d.json", b"[" + b"[" * 10_000))
    with pytest.raises(InputError, match=r"t.json: the file ends inside record 2 \(is it truncated\?\)"):
        read_all(write(tmp_path, "t.json", b'[{"a": 1}, {"a": "xy'))
    rows, lines, bad = read_all(write(tmp_path, "u.json", b'[{"a": "\\udc00"}, {"a": {"b": [1, 2]}}]'))
    assert rows == [{"a": '{"b":[1,2]}'}] and lines == [2] and bad[0][0] == 1


# --- 4. gz and parquet --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t.csv.gz", "t.jsonl.gz", "t.json.gz", "t.parquet.gz", "t.parquet"])
def test_truncated_or_corrupt_compressed_files_are_one_sentence(tmp_path, name):
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(1000))}), buf)
    data = buf.getvalue() if "parquet" in name else b"a,b\n" + b"1,2\n" * 1000
    packed = gzip.compress(data) if name.endswith(".gz") else data
    for cut in (packed[: len(packed) // 2], packed[:20] + b"\xff" * 50 + packed[70:]):
        p = tmp_path / name
        p.write_bytes(cut)
        with pytest.raises(InputError) as e:
            read_header(p, DEFAULT)
            read_all(p)
        assert str(e.value).startswith(str(p))


def test_parquet_gz_bomb_is_capped(tmp_path, monkeypatch):
    from t360cli.readers import parquet

    monkeypatch.setattr(parquet, "MAX_GUNZIPPED", 1 << 20)
    p = write(tmp_path, "b.parquet.gz", b"\0" * (3 << 20))
    with pytest.raises(InputError, match=r"b.parquet.gz: inflates to more than 2 GiB"):
        read_all(p)


# --- 5. numbers and formats ---------------------------------------------------------------


def test_more_than_38_significant_digits_is_a_reject():
    long = "1" * 39
    assert parse_decimal(pa.array([long])).errors.to_pylist() == [f"'{long}' has more than 38 significant digits"]
    assert parse_integer(pa.array(["9" * 50])).errors.to_pylist() == [
        f"'{'9' * 40}...' has more than 38 significant digits"
    ]
    assert parse_decimal(pa.array(["-0.000" + "1" * 35, "1" * 38])).errors.to_pylist() == [None, None]


def test_a_format_repeating_a_directive_is_refused():
    assert check_format("%d %d %Y") == "format '%d %d %Y' gives %d twice; each directive may appear once"


# --- 6-8. real exports --------------------------------------------------------------------


def test_header_row_skip_footer_and_physical_lines(tmp_path):
    text = b'Report "Q1"\nGenerated 2025-07-01\n\nid,amount\n1,5\n\n2,6\n3,7\nTotal,18\n,\nPrinted by x\n'
    p = write(tmp_path, "r.csv", text)
    assert readers.find_header_row(p, DEFAULT) == 4
    opts = SourceOptions(header_row=4, skip_footer=2)
    assert read_header(p, opts) == ["id", "amount"]
    rows, lines, bad = read_all(p, opts, chunk_rows=1)
    assert rows == [{"id": "1", "amount": "5"}, {"id": "2", "amount": "6"}, {"id": "3", "amount": "7"}]
    assert lines == [5, 7, 8] and bad == []
    assert read_all(p, SourceOptions(header_row=4, skip_footer=10))[0] == []


def test_skip_footer_in_jsonl_and_on_the_slow_path(tmp_path):
    p = write(tmp_path, "f.jsonl", b'{"a": 1}\n{"a": 2}\n{"total": 3}\n')
    assert read_all(p, SourceOptions(skip_footer=1))[1] == [1, 2]
    p = write(tmp_path, "f.csv", b"a,b\n1,2\n3,4,5\n6,7\nTotal: 13\n")
    rows, lines, bad = read_all(p, SourceOptions(skip_footer=1))
    assert lines == [2, 4] and bad == [(3, "3 cells, the header has 2")]


def test_find_header_row_without_title_is_the_first_line(tmp_path):
    assert readers.find_header_row(write(tmp_path, "a.csv", b"\n\nx,y\n1,2\n"), DEFAULT) == 3
    assert readers.find_header_row(write(tmp_path, "t.tsv", b"My report\n\nName\tAge\nA\t1\nB\t2\n"), DEFAULT) == 3


def test_header_row_past_the_end(tmp_path):
    with pytest.raises(InputError, match=r"h.csv: no header at or below line 9: the file has 2 lines"):
        read_header(write(tmp_path, "h.csv", b"a,b\n1,2\n"), SourceOptions(header_row=9))


@pytest.mark.parametrize("bom, codec", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")])
@pytest.mark.parametrize("name", ["u.csv", "u.jsonl", "u.csv.gz"])
def test_utf16_bom_is_honoured_whatever_encoding_says(tmp_path, bom, codec, name):
    text = "id,name\r\n1,José\r\n" if ".csv" in name else '{"id": "1", "name": "José"}\r\n'
    p = write(tmp_path, name, bom + text.encode(codec))
    rows, lines, bad = read_all(p, SourceOptions(encoding="cp1252"))
    assert rows == [{"id": "1", "name": "José"}] and lines == [2 if ".csv" in name else 1] and bad == []


def test_lone_cr_ends_a_line(tmp_path):
    p = write(tmp_path, "mac.csv", b"Title\r\ra,b\r1,2\r3,4\r")
    assert readers.find_header_row(p, DEFAULT) == 3
    rows, lines, _ = read_all(p, SourceOptions(header_row=3))
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}] and lines == [4, 5]


@pytest.mark.parametrize("head, delim, other", [(b"a;b;c", ",", ";"), (b"a\tb", ",", "\\t"), (b"a|b", ";", "|")])
def test_a_header_holding_another_delimiter_says_which(tmp_path, head, delim, other):
    p = write(tmp_path, "s.csv", head + b"\n1\n")
    with pytest.raises(InputError) as e:
        read_header(p, SourceOptions(delimiter=delim))
    assert f"s.csv: line 1: the header contains '{other}': set source.delimiter: \"{other}\"." in str(e.value)


# --- fuzz ---------------------------------------------------------------------------------


def _seeds() -> dict[str, bytes]:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ["a", "b", None], "v": [1.5, None, 3.0], "n": [[1], None, [2, 3]]}), buf)
    csv = 'id,name,amount\n1,"José, ""J""",12.50\n2,"multi\nline",3\n3,Zoë,-4\n'.encode()
    jsonl = b'{"id": "1", "v": 1.5, "n": {"x": [1, 2]}}\n{"id": "2", "v": null}\n{"id": "3", "s": "\\u00e9"}\n'
    js = b'[{"id": "1", "v": 1.5}, {"id": "2", "n": [1, {"a": 2}]}, {"id": "3"}]'
    return {"csv": csv, "tsv": csv.replace(b",", b"\t"), "jsonl": jsonl, "json": js, "parquet": buf.getvalue()}


_INSERTS = [b"\0", b"\r", b'"', b"\n", b"\xe9", b"\xff\xfe", b"\\ud800", b"[" * 2000, b"\xed\xa0\x80", b",,,"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[at:]
        elif op == 2:
            b[at:at] = rng.choice(_INSERTS)
        elif op == 3:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 300)))
    return bytes(b)


def test_fuzz_readers_end_in_rows_rejects_or_one_input_error(tmp_path):
    rng = random.Random(20250711)
    seeds = _seeds()
    start, outcomes = time.monotonic(), {"rows": 0, "error": 0}
    for i in range(400):
        fmt = rng.choice(list(seeds))
        gz = rng.random() < 0.25
        data = _mutate(rng, seeds[fmt])
        if gz:
            packed = gzip.compress(data)
            data = _mutate(rng, packed) if rng.random() < 0.5 else packed
        p = tmp_path / f"f{i}.{fmt}{'.gz' if gz else ''}"
        p.write_bytes(data)
        opts = SourceOptions(
            encoding=rng.choice(["utf-8", "utf-8", "cp1252", "utf-16"]), skip_footer=rng.choice([0, 1])
        )
        try:
            readers.read_header(p, opts)
            for chunk in readers.read_chunks([p], opts, chunk_rows=2):
                assert chunk.table.num_rows == len(chunk.lines)
                for bad in chunk.bad:
                    json.dumps(bad.cells).encode("utf-8")  # a reject can be written as UTF-8
                    assert bad.reason
                chunk.table.to_pylist()
            outcomes["rows"] += 1
        except T360Error as e:
            assert str(e).startswith(str(p)) or str(p) in str(e), str(e)
            outcomes["error"] += 1
    assert time.monotonic() - start < 20
    assert outcomes["rows"] > 50 and outcomes["error"] > 50


# --- fuzz: mappings and configs through the CLI ------------------------------------------------------

SAMPLES = Path(readers.__file__).resolve().parents[1] / "sample_data"
CONFIG_SEED = b"""\
base_url: https://partners.example.com
allow_insecure_http: false
api_key_env: T360_API_KEY
batch_size: 500
max_batch_bytes: 1000000
concurrency: 4
rate_limit: null
timeout_s: 30
retry:
  max_attempts: 8
  backoff_initial_s: 0.5
  backoff_max_s: 60
  retry_after_max_s: 300
  stop_after_failed_batches: 3
contract:
  allowed:
    eventname: [Deposit, Withdrawal, Lots]
  customers_must_have: [tracking_data]
  orphans: warn
"""
_YAML_INSERTS = [
    b"&a ", b"*a", b"<<: *a\n", b"x: &a [1, 2]\ny: *a\n", b"!!python/object:os.system ", b"!!binary ", b"? ",
    b"{", b"}", b"[", b"]", b": ", b"- ", b"\t", b'"', b"'", b"#", b"\n  ", b"\n", b"---\n", b"...\n",
    b"%YAML 1.1\n", b"1e999", b".nan", b"-.inf", b"9" * 60, b"0x7f", b"~", b"null", b"\xff", b"\x00", b"\xed\xa0\x80",
    b"[" * 3000, b"{a: " * 500, b"%d %d", b"{Login", b"\\ud800", b"\xe2\x80\xae",
]  # fmt: skip
_HUGE = [10**400, -(10**40), 1e308, float("nan"), float("inf"), -1, 0, 2**63, "1e999", ".nan", ""]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(10 if depth < 4 else 6)
    if pick < 3:
        return rng.choice(_HUGE)
    if pick < 5:
        return rng.choice(["x", "Login", "{Login}", "%Y %Y", "utf-16", ";", "csv", "decimal", "x" * 5000, "\t"])
    if pick == 5:
        return rng.choice([None, True, False])
    if pick < 8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["kind", "fields", "source", "where", "column", "type", "format", "value", "template", "map", "retry"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _restructure(rng: random.Random, data: bytes) -> bytes:
    """The seed parsed, one to three of its values replaced by random structures, dumped again."""
    import yaml

    doc = yaml.safe_load(data)
    for _ in range(rng.randint(1, 3)):
        node = doc
        while isinstance(node, dict) and node and rng.random() < 0.6:
            child = node[rng.choice(list(node))]
            if not isinstance(child, dict) or not child:
                break
            node = child
        if isinstance(node, dict) and node:
            node[rng.choice([*node, "extra"])] = _random_value(rng)
    return yaml.safe_dump(doc, allow_unicode=True, width=10**6).encode()


def _mutate_yaml(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.3:
        return _restructure(rng, data)
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op, at = rng.randrange(4), rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[at:]
        elif op == 2:
            b[at:at] = rng.choice(_YAML_INSERTS)
        else:
            line = bytes(b).split(b"\n")
            i = rng.randrange(len(line))
            line[i] = line[i] + b" " + rng.choice(_YAML_INSERTS)
            b = bytearray(b"\n".join(line))
    return bytes(b)


_UNEXPECTED = re.compile(r"unexpected [A-Z]\w*")  # what the top level prints for an uncaught exception


def test_fuzz_mappings_and_configs_end_in_a_run_or_one_sentence(tmp_path, monkeypatch):
    """SPEC 11: a few hundred mutated mappings and configs (byte flips, truncations, YAML syntax,
    random structures, huge numbers, aliases) through `t360 validate` in-process: exit 0, 1 or 2,
    never a traceback or `unexpected <Type>`, and every exit 2 names the file at fault."""
    from typer.testing import CliRunner

    from t360cli.cli import app

    for name in [n for n in os.environ if n.startswith("T360_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("T360_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    samples = ["mt_deals", "customers", "withdrawals"]
    for name in samples:
        (tmp_path / f"{name}.csv").write_bytes((SAMPLES / f"{name}.csv").read_bytes())
    rng, runner = random.Random(20250712), CliRunner()
    start, codes = time.monotonic(), {0: 0, 1: 0, 2: 0}
    for i in range(300):
        sample = rng.choice(samples)
        mapping, config = (SAMPLES / f"{sample}.yaml").read_bytes(), CONFIG_SEED
        if i % 3 == 2:
            config = _mutate_yaml(rng, config)
        else:
            mapping = _mutate_yaml(rng, mapping)
        (tmp_path / "m.yaml").write_bytes(mapping)
        (tmp_path / "c.yaml").write_bytes(config)
        args = ["validate", f"{sample}.csv", "-m", "m.yaml", "-c", "c.yaml", "--rejects", "rejects.csv"]
        result = runner.invoke(app, args, catch_exceptions=False)
        out = result.output
        where = f"case {i}: mapping {mapping!r}\nconfig {config!r}\n{out}"
        assert result.exit_code in (0, 1, 2), where
        assert "Traceback" not in out and not _UNEXPECTED.search(out), where
        if result.exit_code == 2:
            assert any(name in out for name in ("m.yaml", "c.yaml", f"{sample}.csv")), where
        codes[result.exit_code] += 1
    assert time.monotonic() - start < 30
    assert codes[2] > 100 and codes[0] + codes[1] > 25, codes
