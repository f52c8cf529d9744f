"""events:, aggregate: and eventid: {generate: hash} (issue 4; SPEC 3 and 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_pipeline

from t360cli.errors import MappingError
from t360cli.mapping import load_mapping

WIDE = """Date,Login,Product,Lots,Volume,Rebate
2025-07-21,7,FX,12.45,124500.00,24.90
2025-07-21,8,CFD,,,
2025-07-21,9,Metals,1.5,x,3
2025-07-22,7,FX,0.10,,
"""

EVENTS = """kind: activities
fields:
  customerid: {template: "fx_{Login}"}
  createtime: {column: Date, type: date}
  Currency: {value: USD}
  Product: Product
events:
  - {eventname: {value: Lots},   Value: {column: Lots, type: decimal}}
  - {eventname: {value: Volume}, Value: {column: Volume, type: decimal}}
  - {eventname: {value: Rebate}, Value: {column: Rebate, type: decimal}}
"""


def test_events_wide_rows(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"daily.csv": WIDE}, EVENTS)
    c = out.counts
    assert (c.rows_read, c.rows_valid, c.rows_rejected, c.rows_filtered, c.records_valid) == (4, 2, 1, 1, 4)
    base = {"customerid": "fx_7", "createtime": "2025-07-21", "Currency": "USD", "Product": "FX"}
    assert out.records == [
        {**base, "eventname": "Lots", "Value": "12.45"},
        {**base, "eventname": "Volume", "Value": "124500.00"},
        {**base, "eventname": "Rebate", "Value": "24.90"},
        {**base, "createtime": "2025-07-22", "eventname": "Lots", "Value": "0.10"},
    ]
    assert "daily.csv,4,Value: 'x' is not a number" in out.rejects  # the whole wide row, none of its events
    assert out.totals == {
        "Lots": {"USD": {"Value": "12.55"}},
        "Volume": {"USD": {"Value": "124500.00"}},
        "Rebate": {"USD": {"Value": "24.90"}},
    }


def test_events_same_across_chunks(tmp_path: Path) -> None:
    whole = run_pipeline(tmp_path, {"daily.csv": WIDE}, EVENTS)
    tiny = run_pipeline(tmp_path, {"daily.csv": WIDE}, EVENTS, chunk_rows=1, batch_size=2)
    assert [r for r in tiny.records] == whole.records and tiny.counts.records_valid == 4


TRADES_A = """Ticket,Login,Close Time,Symbol Group,Lots,Profit,Ccy
1,7,2025-07-21 10:00:00,FX,0.1,1.10,USD
2,7,2025-07-21 23:30:00,FX,0.2,2.20,USD
3,7,2025-07-21 12:00:00,Metals,1,-5,USD
4,8,2025-07-21 12:00:00,FX,bad,1,USD
"""
TRADES_B = """Ticket,Login,Close Time,Symbol Group,Lots,Profit,Ccy
5,7,2025-07-21 11:00:00,FX,0.7,0.01,USD
6,7,2025-07-22 09:00:00,FX,1.0,3,USD
"""

AGGREGATE = """kind: activities
timezone: Europe/Madrid
fields:
  customerid: {template: "fx_{Login}"}
  eventname: {value: DailyStats}
  eventid: {generate: hash}
  createtime: {column: Close Time, type: datetime}
  Product: "Symbol Group"
  Lots: {column: Lots, type: decimal}
  Profit: {column: Profit, type: decimal}
  Currency: Ccy
aggregate:
  by: [customerid, {date: createtime}, Product, Currency]
  sum: [Lots, Profit]
  count: Trades
"""


def test_aggregate_across_chunks_and_files(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, {"a.csv": TRADES_A, "b.csv": TRADES_B}, AGGREGATE, chunk_rows=2)
    c = out.counts
    assert (c.rows_read, c.rows_valid, c.rows_rejected, c.records_valid) == (6, 5, 1, 3)
    stripped = [{k: v for k, v in r.items() if k != "eventid"} for r in out.records]
    # 23:30 Madrid is 21:30 UTC, same day; 0.1 + 0.2 + 0.7 is exactly 1.0
    assert stripped == [
        {
            "customerid": "fx_7",
            "eventname": "DailyStats",
            "createtime": "2025-07-21",
            "Product": "FX",
            "Lots": "1.0",
            "Profit": "3.31",
            "Currency": "USD",
            "Trades": "3",
        },
        {
            "customerid": "fx_7",
            "eventname": "DailyStats",
            "createtime": "2025-07-21",
            "Product": "Metals",
            "Lots": "1",
            "Profit": "-5",
            "Currency": "USD",
            "Trades": "1",
        },
        {
            "customerid": "fx_7",
            "eventname": "DailyStats",
            "createtime": "2025-07-22",
            "Product": "FX",
            "Lots": "1.0",
            "Profit": "3",
            "Currency": "USD",
            "Trades": "1",
        },
    ]
    assert all(r["eventid"].startswith("t360-") and len(r["eventid"]) == 37 for r in out.records)
    # a generated id opens its record; the rest keeps mapping order
    assert list(out.records[0]) == [
        "eventid",
        "customerid",
        "eventname",
        "createtime",
        "Product",
        "Lots",
        "Profit",
        "Currency",
        "Trades",
    ]
    one_chunk = run_pipeline(tmp_path, {"a.csv": TRADES_A, "b.csv": TRADES_B}, AGGREGATE)
    assert one_chunk.bodies == out.bodies
    assert "a.csv,5,Lots: 'bad' is not a number" in out.rejects


def test_exact_decimal_sums(tmp_path: Path) -> None:
    rows = "".join(f"{i},7,2025-07-21 10:00:00,FX,0.1,0.2,USD\n" for i in range(10))
    out = run_pipeline(tmp_path, {"t.csv": TRADES_A.splitlines()[0] + "\n" + rows}, AGGREGATE, chunk_rows=3)
    assert out.records[0]["Lots"] == "1.0" and out.records[0]["Profit"] == "2.0"


def test_hash_ids_stable_and_sensitive(tmp_path: Path) -> None:
    mapping = "kind: activities\nfields:\n  customerid: L\n  eventname: {value: Deposit}\n  eventid: {generate: hash}\n  Value: {column: A, type: decimal}\n"
    first = run_pipeline(tmp_path, {"d.csv": "L,A\n1,10\n2,20\n"}, mapping)
    again = run_pipeline(tmp_path, {"d.csv": "L,A\n1,10\n2,20\n"}, mapping)
    changed = run_pipeline(tmp_path, {"d.csv": "L,A\n1,10\n2,21\n"}, mapping)
    ids = [r["eventid"] for r in first.records]
    assert ids == [r["eventid"] for r in again.records]
    assert [r["eventid"] for r in changed.records] == [ids[0], changed.records[1]["eventid"]]
    assert changed.records[1]["eventid"] != ids[1]
    # the same row twice is one event: the second is a duplicate, not a second deposit
    dup = run_pipeline(tmp_path, {"d.csv": "L,A\n1,10\n1,10\n"}, mapping)
    assert dup.counts.rows_duplicate == 1 and len(dup.records) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "kind: activities\nfields:\n  customerid: L\n  eventname: {value: X}\n  Currency: C\n  Lots: {column: A, type: decimal}\n"
            "aggregate:\n  by: [customerid]\n  sum: [Lots]\n",
            "line 5: aggregate: Currency can differ between the rows of a group. "
            "Add Currency to aggregate.by, list it in sum:, or make it a value:.",
        ),
        (
            "kind: activities\nfields:\n  customerid: L\n  eventname: {value: X}\n  Lots: {column: A}\n"
            "aggregate:\n  by: [customerid]\n  sum: [Lots]\n",
            "line 8: aggregate.sum: 'Lots' must be a decimal or integer field.",
        ),
        (
            "kind: customers\nfields:\n  customerId: L\nevents:\n  - {x: {column: A}}\n",
            "line 4: events: is for activities mappings only.",
        ),
        (
            "kind: activities\nfields:\n  customerid: L\nevents:\n  - {eventname: {value: Lots}}\n",
            "line 5: this event maps no column, so it could never be skipped when empty. "
            "Give it at least one column, e.g. Value: {column: lots, type: decimal}.",
        ),
        (
            "kind: activities\nfields:\n  customerid: L\n  eventname: {value: X}\n  eventid: {generate: uuid}\n",
            "line 5: eventid: generate must be 'hash', not 'uuid'.",
        ),
    ],
)
def test_power_mapping_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value) == f"{path}, {message}"


def test_hash_ids_are_xxh3_128_of_the_text() -> None:
    """Pinned: ids must not change with a library upgrade or another machine."""
    import pyarrow as pa

    from t360cli.encode import hash_ids

    assert hash_ids(pa.array(["activities|x"])).to_pylist() == [
        "t360-" + __import__("xxhash").xxh3_128_hexdigest(b"activities|x")
    ]
    assert hash_ids(pa.array([""])).to_pylist() == ["t360-99aa06d3014798d86001c324468d497f"]


def test_records_with_id_hash_the_record_they_open() -> None:
    """Each record is valid JSON opened by its id, and the id is the XXH3-128 of
    `kind|<the record without it>,` as documented, whether or not the first field is there."""
    import orjson
    import pyarrow as pa
    import xxhash

    from t360cli.encode import records, records_with_id

    for first in (["a", 'b"q', "c"], [None, "b", None]):
        fields = {"customerid": pa.array(first, pa.string()), "Value": pa.array(["1.5", None, None])}
        recs, ids, _ = records_with_id(fields, "activities")
        plain = records(fields).to_pylist()
        for rec, eid, body in zip(recs.to_pylist(), ids.to_pylist(), plain, strict=True):
            assert eid == "t360-" + xxhash.xxh3_128_hexdigest(f"activities|{body}".encode())
            obj = orjson.loads(rec[:-1])
            assert list(obj)[0] == "eventid" and obj["eventid"] == eid
            assert {k: v for k, v in obj.items() if k != "eventid"} == orjson.loads(body[:-1])
