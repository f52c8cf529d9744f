"""Validation end to end on small files: buckets, reasons, rejects CSV, duplicates (SPEC 5, 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import counts_add_up
from helpers import run_pipeline

from t360cli.dedupe import Dedupe, HashIndex, KeyOrder, RecordKeys, classify

DEPOSITS = """Txn ID,Login,Date,Amount,Ccy,Status,Method
T1,00123,21.07.2025 08:46,"1.000,50",EUR,Approved,CC
T2,00124,21.07.2025 09:00,250,usd,Approved,BT
T3,,21.07.2025 09:00,250,USD,Approved,BT
T4,00125,31.02.2025 09:00,abc,XXY,Approved,ZZ
T5,00126,21.07.2025 09:00,5,USD,Pending,CC

T1,00123,21.07.2025 08:46,"1.000,50",EUR,Approved,CC
T2,00124,21.07.2025 09:00,251,USD,Approved,BT
"T6","00127","30.03.2025 02:30","7,5","EUR","Completed","CC"
T7,00128,27.10.2025 02:30,"0,1",,Approved,CC
"""

DEPOSITS_MAPPING = """kind: activities
source: {decimal: ",", thousands: "."}
timezone: Europe/Madrid
where:
  Status: [Approved, Completed]
fields:
  customerid: {template: "fx_{Login}"}
  eventname: {value: Deposit}
  eventid: "Txn ID"
  createtime: {column: Date, type: datetime, format: "%d.%m.%Y %H:%M"}
  Value: {column: Amount, type: decimal}
  Currency: {column: Ccy, type: currency, default: USD}
  deposit_type: {column: Method, map: {CC: credit_card, BT: bank_transfer}}
"""


def test_activities_every_bucket(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"deposits.csv": DEPOSITS}, DEPOSITS_MAPPING)
    c = out.counts
    assert (c.rows_read, c.rows_valid, c.rows_rejected, c.rows_filtered, c.rows_duplicate) == (9, 3, 4, 1, 1)
    assert counts_add_up(c.__dict__) and c.records_valid == 3
    assert out.records == [
        {
            "customerid": "fx_00123",
            "eventname": "Deposit",
            "eventid": "T1",
            "createtime": "2025-07-21 06:46",
            "Value": "1000.50",
            "Currency": "EUR",
            "deposit_type": "credit_card",
        },
        {
            "customerid": "fx_00124",
            "eventname": "Deposit",
            "eventid": "T2",
            "createtime": "2025-07-21 07:00",
            "Value": "250",
            "Currency": "USD",
            "deposit_type": "bank_transfer",
        },
        # fall back: 02:30 happens twice in Madrid on 2025-10-26... 27.10 is a plain CET day
        {
            "customerid": "fx_00128",
            "eventname": "Deposit",
            "eventid": "T7",
            "createtime": "2025-10-27 01:30",
            "Value": "0.1",
            "Currency": "USD",
            "deposit_type": "credit_card",
        },
    ]
    assert out.rejects == (
        "source_file,source_line,reason,Txn ID,Login,Date,Amount,Ccy,Status,Method\n"
        'deposits.csv,4,"customerid: required, but empty",T3,,21.07.2025 09:00,250,USD,Approved,BT\n'
        "deposits.csv,5,createtime: '31.02.2025 09:00' does not match format %d.%m.%Y %H:%M; "
        "Value: 'abc' is not a number; Currency: 'XXY' is not an ISO 4217 currency code; "
        "deposit_type: 'ZZ' is not in the map,T4,00125,31.02.2025 09:00,abc,XXY,Approved,ZZ\n"
        "deposits.csv,9,eventid: 'T2' was already sent with different values (conflict),"
        "T2,00124,21.07.2025 09:00,251,USD,Approved,BT\n"
        "deposits.csv,10,createtime: '30.03.2025 02:30' does not exist in Europe/Madrid (clock change),"
        'T6,00127,30.03.2025 02:30,"7,5",EUR,Completed,CC\n'
    )
    assert out.totals == {"Deposit": {"EUR": {"Value": "1000.50"}, "USD": {"Value": "250.10"}}}


def test_chunking_does_not_change_anything(tmp_path: Path) -> None:
    whole = run_pipeline(tmp_path, {"deposits.csv": DEPOSITS}, DEPOSITS_MAPPING)
    tiny = run_pipeline(tmp_path, {"deposits.csv": DEPOSITS}, DEPOSITS_MAPPING, chunk_rows=2)
    assert tiny.bodies == whole.bodies and tiny.rejects == whole.rejects and tiny.totals == whole.totals
    assert tiny.counts == whole.counts


CUSTOMERS = """Login,Registered,Country,Tag,First
1,2025-07-21T08:46:59,Spain,2001_1000_abcdefg,Maria
2,2025-07-21 10:00,ESP,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,Jo
3,2025-07-21,de,,Ann
1,2025-07-21T08:46:59,Spain,2001_1000_abcdefg,Maria
1,2025-07-21T08:46:59,ES,2001_1000_new,Maria
4,yesterday,Atlantis,t,Bob
"""

CUSTOMERS_MAPPING = """kind: customers
fields:
  customerId: {template: "fx_{Login}"}
  regtime: Registered
  country: {column: Country, type: country}
  tracking_data: Tag
  firstName: First
"""


def test_customers_rules_and_latest_wins(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"customers.csv": CUSTOMERS}, CUSTOMERS_MAPPING)
    c = out.counts
    assert (c.rows_read, c.rows_valid, c.rows_rejected, c.rows_duplicate) == (6, 3, 2, 1)
    assert c.unattributed_customers == 1  # fx_3; fx_1's latest record has a tracking value
    assert out.records == [
        {
            "customerId": "fx_1",
            "regtime": "2025-07-21 08:46",
            "country": "ES",
            "tracking_data": "2001_1000_abcdefg",
            "firstName": "Maria",
        },
        {"customerId": "fx_3", "regtime": "2025-07-21 00:00", "country": "DE", "firstName": "Ann"},
        {
            "customerId": "fx_1",
            "regtime": "2025-07-21 08:46",
            "country": "ES",
            "tracking_data": "2001_1000_new",
            "firstName": "Maria",
        },
    ]
    lines = out.rejects.splitlines()
    assert lines[1].startswith('customers.csv,3,"tracking_data: 56 characters, at most 50",2,')
    assert lines[2] == (
        "customers.csv,7,regtime: 'yesterday' is not an ISO 8601 date or time; "
        "set format: in the mapping; country: 'Atlantis' is not a known country,4,yesterday,Atlantis,t,Bob"
    )
    assert out.totals == {}


def test_limit_reads_first_rows_only(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"customers.csv": CUSTOMERS}, CUSTOMERS_MAPPING, limit=2)
    assert out.counts.rows_read == 2 and out.counts.rows_valid == 1 and out.counts.rows_rejected == 1


def test_rejects_union_of_headers_in_order(tmp_path: Path) -> None:
    files = {"a.csv": "Login,Tag\n1,\n,x\n", "b.csv": "Login,Extra,Tag\n,e,y\n"}
    out = run_pipeline(tmp_path, files, "kind: customers\nfields:\n  customerId: Login\n  tracking_data: Tag\n")
    assert out.rejects == (
        "source_file,source_line,reason,Login,Tag,Extra\n"
        'a.csv,3,"customerId: required, but empty",,x,\n'
        'b.csv,2,"customerId: required, but empty",,y,e\n'
    )


def test_no_rejects_file_when_all_valid(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"a.csv": "Login\n1\n"}, "kind: customers\nfields:\n  customerId: Login\n")
    assert out.rejects is None and not (tmp_path / "rejects.csv").exists()


def test_map_default_and_empty_cells(tmp_path: Path) -> None:
    mapping = """kind: activities
fields:
  customerid: L
  eventname: {column: T, map: {D: Deposit, W: Withdrawal}, default: Deposit}
  Value: {column: A, type: decimal}
  note: {column: N, max_length: 3}
  rank: {column: R, type: integer}
"""
    data = "L,T,A,N,R\n1,,1,,007\n2,W,,abcd,3.0\n3,X, 2 ,ok,-0\n"
    out = run_pipeline(tmp_path, {"a.csv": data}, mapping)
    assert out.records == [{"customerid": "1", "eventname": "Deposit", "Value": "1", "rank": "7"}]
    reasons = [line.split(",", 3)[2] for line in out.rejects.splitlines()[1:]]
    assert reasons == ['"note: 4 characters', "eventname: 'X' is not in the map"]
    assert "rank: '3.0' is not a whole number" in out.rejects


def test_hash_index_newest_wins() -> None:
    index = HashIndex()
    rng = np.random.default_rng(7)
    truth: dict[int, int] = {}
    for _ in range(40):  # bounded
        keys = rng.integers(0, 500, size=64).astype(np.uint64)
        vals = rng.integers(0, 2**62, size=64).astype(np.uint64)
        index.put(keys, vals)
        truth.update(zip(keys.tolist(), vals.tolist(), strict=True))
    probe = np.arange(600, dtype=np.uint64)
    found, got = index.lookup(probe)
    for k, f, v in zip(probe.tolist(), found, got.tolist(), strict=True):
        assert f == (k in truth) and (not f or v == truth[k])
    assert len(index.runs) <= 8  # log-structured: runs merge


@pytest.mark.parametrize(
    "kind, keys, texts, expected",
    [
        ("activities", ["a", "b", "a", "c", None, "b"], ["1", "2", "1", "3", "x", "2x"], [0, 0, 1, 0, 0, 2]),
        ("customers", ["a", "a", "a", "b"], ["1", "1", "2", "1"], [0, 1, 3, 0]),  # 3: a later change of "a"
    ],
)
def test_dedupe_rules(kind: str, keys: list, texts: list, expected: list) -> None:
    assert classify_texts(Dedupe(kind), keys, texts) == expected


def classify_texts(dedupe: Dedupe, keys: list, texts: list) -> list[int]:
    """The path a chunk takes: RecordKeys built beside the mapping, classified on absorb."""
    return classify(dedupe, RecordKeys.of(pa.array(keys, pa.string()), pa.array(texts))).tolist()


def test_dedupe_across_chunks() -> None:
    d = Dedupe("customers")
    classify_texts(d, ["a", "b"], ["1", "1"])
    assert classify_texts(d, ["a", "a", "b"], ["1", "2", "1"]) == [1, 3, 1]
    # back to an earlier value is a change again: later values must win
    assert classify_texts(d, ["a"], ["1"]) == [3]


def test_hash_index_filter_grows_and_stays_exact() -> None:
    index = HashIndex(filter_bits=64)  # one word: must grow many times
    keys = np.random.default_rng(3).integers(0, 2**63, size=5000).astype(np.uint64)
    for part in np.array_split(keys, 50):
        index.put(part, part + np.uint64(1))
    assert index.filter_bits >= 16 * 5000
    found, got = index.lookup(np.concatenate([keys, keys + np.uint64(7)]))
    assert found[:5000].all() and (got[:5000] == keys + np.uint64(1)).all()
    assert found[5000:].sum() == np.isin(keys + np.uint64(7), keys).sum()
    absent = np.random.default_rng(4).integers(0, 2**63, size=5000).astype(np.uint64) * np.uint64(2)
    assert index.maybe(absent).mean() < 0.02  # the filter spares nearly every lookup of an absent key


def test_repeated_dates_parsed_once_give_the_same_answers(tmp_path: Path) -> None:
    """A column that repeats a few dates is parsed per distinct value and spread back:
    every row still gets its own value, and a bad or impossible cell its own reason."""
    days = ["2025-03-01", "2025-03-02", "2025-03-30 02:30", "2025-03-03"]
    lines = ["Login,Day,Amount"] + [f"{i},{days[i % 4]},1" for i in range(4000)]
    lines[1234], lines[3001], lines[2500] = "1233,not-a-day,1", "3000,2025-02-30,1", "2499,,1"
    mapping = """kind: activities
timezone: Europe/Madrid
fields:
  customerid: Login
  eventname: {value: Deposit}
  createtime: {column: Day, type: datetime}
  Value: {column: Amount, type: decimal}
"""
    out = run_pipeline(tmp_path, {"d.csv": "\n".join(lines) + "\n"}, mapping, chunk_rows=4096)
    assert out.counts.rows_rejected == 1000 + 2  # 02:30 on 30 March does not exist in Madrid
    want = {"2025-03-01": "2025-02-28 23:00", "2025-03-02": "2025-03-01 23:00", "2025-03-03": "2025-03-02 23:00"}
    for rec in out.records:
        i = int(rec["customerid"])
        assert rec.get("createtime") == (None if i == 2499 else want[days[i % 4]]), rec
    assert "createtime: 'not-a-day' is not an ISO 8601 date or time" in out.rejects
    assert "createtime: '2025-02-30' is not an ISO 8601 date or time" in out.rejects
    assert "createtime: '2025-03-30 02:30' does not exist in Europe/Madrid (clock change)" in out.rejects
    assert "d.csv,1235," in out.rejects and "d.csv,3002," in out.rejects and "d.csv,2501," not in out.rejects


def test_dedupe_of_content_hash_ids_stores_each_key_once() -> None:
    """Ids hashed from content (key is content) keep no second copy, and still find
    repeats across chunks and across merged runs."""
    d = Dedupe("activities")
    rng = np.random.default_rng(5)
    seen: set[int] = set()
    for _ in range(30):  # bounded; enough puts for runs to merge
        k = rng.integers(0, 2**63, size=300).astype(np.uint64)
        k[::7] = k[1::7][: len(k[::7])]  # repeats inside the chunk
        if seen:
            k[-20:] = np.array(sorted(seen)[:20], dtype=np.uint64)  # repeats of earlier chunks
        status = d.classify_hashes(k, k, KeyOrder.of(k))
        first = np.zeros(len(k), dtype=bool)
        first[np.unique(k, return_index=True)[1]] = True
        want = np.where(first & ~np.isin(k, np.array(sorted(seen), dtype=np.uint64)), 0, 1)
        assert status.tolist() == want.tolist()
        seen.update(k.tolist())
    assert all(v is None for _, v in d.index.runs) and len(d.index.runs) < 30


def test_where_seen_names_the_values_a_filter_dropped(tmp_path: Path) -> None:
    """A `where:` in the wrong case filters everything; the values seen say why (SPEC 10)."""
    rows = "Txn ID,Login,Date,Amount,Ccy,Status,Method\n" + "".join(
        f"T{i},1,21.07.2025 08:46,5,EUR,{'Approved' if i % 3 else 'Pending'},CC\n" for i in range(30)
    )
    out = run_pipeline(
        tmp_path, {"d.csv": rows}, DEPOSITS_MAPPING.replace("[Approved, Completed]", "[approved]"), chunk_rows=7
    )
    assert out.counts.rows_filtered == out.counts.rows_read == 30
    assert out.where_seen == {"Status": [("Approved", 20), ("Pending", 10)]}
    kept = run_pipeline(tmp_path, {"d.csv": rows}, DEPOSITS_MAPPING)
    # values are counted only in chunks `where` empties: all the warning needs, none of the cost
    assert kept.where_seen == {} and kept.counts.rows_valid == 20


def test_strip_unmapped_keep_and_nul(tmp_path: Path) -> None:
    """SPEC 12: `strip` reads `1.234,50 €`; `unmapped: keep` passes other values to the
    type check; SPEC 11: a NUL in a mapped cell rejects the row."""
    rows = (
        "Login,Country,Balance,Tag\n"
        '1,España,"1.234,50 €",a\n'
        '2,Deutschland,"12,5 %",b\n'
        "3,FR,€,c\n"
        "4,Atlantis,5,d\n"
        "5,FR,5,x\x00y\n"
    )
    mapping = (
        'kind: customers\nsource: {decimal: ","}\nfields:\n  customerId: Login\n'
        "  country: {column: Country, type: country, map: {España: ES, Deutschland: DE}, unmapped: keep}\n"
        '  balance: {column: Balance, type: decimal, strip: "€$% "}\n  tracking_data: Tag\n'
    )
    out = run_pipeline(tmp_path, {"c.csv": rows}, mapping)
    assert out.records[:3] == [
        {"customerId": "1", "country": "ES", "balance": "1234.50", "tracking_data": "a"},
        {"customerId": "2", "country": "DE", "balance": "12.5", "tracking_data": "b"},
        {"customerId": "3", "country": "FR", "tracking_data": "c"},
    ]
    assert out.rejects is not None
    assert "c.csv,5,country: 'Atlantis' is not" in out.rejects
    assert "c.csv,6,tracking_data: holds a NUL character (it cannot be sent)" in out.rejects


def test_contract_allowed_and_customers_must_have(tmp_path: Path) -> None:
    """SPEC 12: contract.allowed rejects a record whose final value was not agreed (a constant
    included), naming the closest; customers_must_have counts the latest records without."""
    from t360cli.mapping import load_mapping
    from t360cli.pipeline import Pipeline, open_inputs

    (tmp_path / "a.csv").write_text("Login,Kpi,Amount,Line\n1,Deposit,5,FX\n2,Deposti,6,FX\n3,Deposit,7,Stocks\n")
    (tmp_path / "a.yaml").write_text(
        "kind: activities\nfields:\n  customerid: Login\n  eventname: Kpi\n  Value: Amount\n  product_line: Line\n"
    )
    mapping = load_mapping(tmp_path / "a.yaml")
    allowed = {"eventname": ("Deposit", "Withdrawal"), "product_line": ("FX", "CFD")}
    buffer: list[tuple[str, int, str]] = []

    class Sink:
        def write(self, source: str, line: int, reason: str, cells: dict) -> None:
            buffer.append((source.rsplit("/", 1)[-1], line, reason))

    pipe = Pipeline(mapping, open_inputs(mapping, [str(tmp_path / "a.csv")]), Sink(), allowed=allowed)
    records = [r for piece in pipe.pieces() for r in piece.records.to_pylist()]
    assert len(records) == 1 and pipe.counts.rows_rejected == 2
    assert buffer == [
        ("a.csv", 3, "eventname: 'Deposti' is not an agreed KPI; did you mean Deposit?"),
        ("a.csv", 4, "product_line: 'Stocks' is not an agreed value (agreed: FX, CFD)"),
    ]

    (tmp_path / "c.csv").write_text("Login,Tag,Country\n1,,DE\n2,t,\n1,t,DE\n3,,\n")
    (tmp_path / "c.yaml").write_text(
        "kind: customers\nfields:\n  customerId: Login\n  tracking_data: Tag\n  country: Country\n"
    )
    mapping = load_mapping(tmp_path / "c.yaml")
    pipe = Pipeline(
        mapping, open_inputs(mapping, [str(tmp_path / "c.csv")]), None, must_have=("country", "tracking_data")
    )
    assert sum(len(piece.records) for piece in pipe.pieces()) == 4
    assert pipe.customers_missing == {"country": 2, "tracking_data": 1}
    assert pipe.counts.unattributed_customers == 1
