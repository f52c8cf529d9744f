"""t360cli.ledger: what Track360 acknowledged across runs, on real SQLite files (SPEC 13)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from t360cli.errors import T360Error, UsageError
from t360cli.files import UnsafePath
from t360cli.ledger import Ledger, LedgerError, Seen, Target, id_hashes, record_hashes, when_text

TARGET = Target.of("https://api.track360.io/v1", "key-one")
T1 = datetime(2025, 7, 1, 11, 3, 10, tzinfo=UTC)
T2 = datetime(2025, 7, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger.open(path, TARGET, state_dir=path.parent) as led:
        yield led


def ids(*texts: str) -> pa.Array:
    return pa.array(texts, pa.string())


def recs(*texts: str) -> np.ndarray:
    return record_hashes(pa.array(texts, pa.string()))


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- hashes and targets ---------------------------------------------------------------


def test_hashes_are_stable_across_processes() -> None:
    # XXH3-64 is specified byte for byte: these values hold on any machine, in any process
    assert id_hashes(ids("fx_0048812")).tolist() == [1912111971445345736]
    assert record_hashes(pa.array(['{"customerId":"fx_1"}'])).tolist() == [12221664299655282695]
    assert id_hashes(ids("fx_0048812")).dtype == np.uint64


def test_a_record_hashes_the_same_with_or_without_the_encoders_comma() -> None:
    assert recs('{"a":"1"},', '{"a":"1"}').tolist() == recs('{"a":"1"}', '{"a":"1"},').tolist()
    assert recs('{"a":"1"}')[0] != recs('{"a":"2"}')[0]


def test_target_names_host_port_and_a_key_prefix_never_the_key() -> None:
    assert Target.of("https://API.track360.io/v1/", "key-one") == Target("api.track360.io", 443, TARGET.key_id)
    assert Target.of("http://localhost:8080", "key-one").port == 8080
    assert Target.of("http://127.0.0.1", "k").port == 80
    assert len(TARGET.key_id) == 16 and "key-one" not in str(TARGET)
    assert Target.of("https://h", "key-two").key_id != TARGET.key_id
    with pytest.raises(UsageError, match="cannot tell the ledger's target"):
        Target.of("not a url", "k")


def test_the_file_never_holds_the_key(ledger: Ledger, path: Path) -> None:
    ledger.record("customers", ids("c1"), recs("{}"), T1)
    ledger.close()
    assert b"key-one" not in path.read_bytes()


# --- record and lookup ----------------------------------------------------------------


def test_lookup_tells_known_same_and_changed(ledger: Ledger) -> None:
    assert ledger.record("customers", ids("c1", "c2", "c3"), recs("{1}", "{2}", "{3}"), T1) == 3
    seen = ledger.lookup("customers", ids("c2", "new", "c1", "c3", "c2"), recs("{2}", "{1}", "{changed}", "{3}", "{x}"))
    assert isinstance(seen, Seen)
    known, same, when = seen
    assert known.tolist() == [True, False, True, True, True]
    assert same.tolist() == [True, False, False, True, False]
    assert when.dtype == np.dtype("datetime64[ms]")
    assert np.isnat(when).tolist() == [False, True, False, False, False]
    assert when[0] == np.datetime64("2025-07-01T11:03:10.000")
    assert when_text(when).to_pylist() == ["2025-07-01 11:03 UTC", None] + ["2025-07-01 11:03 UTC"] * 3


def test_record_overwrites_and_the_last_of_a_repeated_id_wins(ledger: Ledger) -> None:
    ledger.record("customers", ids("c1", "c2", "c1"), recs("{a}", "{b}", "{c}"), T1)
    ledger.record("customers", ids("c2"), recs("{b2}"), T2)
    seen = ledger.lookup("customers", ids("c1", "c2"), recs("{c}", "{b2}"))
    assert seen.same.tolist() == [True, True]
    assert seen.when.tolist() == [T1.replace(tzinfo=None, microsecond=0), T2.replace(tzinfo=None)]


def test_empty_inputs_and_an_empty_ledger(ledger: Ledger) -> None:
    assert ledger.record("activities", ids(), recs(), T1) == 0
    seen = ledger.lookup("activities", ids("e1"), recs("{}"))
    assert seen.known.tolist() == [False] and np.isnat(seen.when).all()
    assert len(ledger.lookup("activities", ids(), recs()).known) == 0
    with pytest.raises(ValueError, match="2 ids but 1 record hashes"):
        ledger.record("activities", ids("a", "b"), recs("{}"))
    with pytest.raises(UsageError, match="unknown ledger kind 'events'"):
        ledger.lookup("events", ids("a"), recs("{}"))


def test_kinds_are_separate(ledger: Ledger) -> None:
    ledger.record("customers", ids("x1"), recs("{r}"), T1)
    assert ledger.lookup("activities", ids("x1"), recs("{r}")).known.tolist() == [False]
    ledger.record("activities", ids("x1"), recs("{e}"), T2)
    assert ledger.lookup("customers", ids("x1"), recs("{r}")).same.tolist() == [True]
    assert ledger.lookup("activities", ids("x1"), recs("{e}")).same.tolist() == [True]


def test_two_targets_in_one_file_do_not_see_each_other(path: Path) -> None:
    other_key = Target.of("https://api.track360.io", "key-two")
    other_port = Target.of("https://api.track360.io:8443", "key-one")
    with Ledger.open(path, TARGET) as one:
        one.record("customers", ids("c1"), recs("{1}"), T1)
    for target in (other_key, other_port):
        with Ledger.open(path, target) as other:
            assert other.lookup("customers", ids("c1"), recs("{1}")).known.tolist() == [False]
            other.record("customers", ids("c1"), recs("{other}"), T2)
    with Ledger.open(path, TARGET) as one:
        seen = one.lookup("customers", ids("c1"), recs("{1}"))
        assert seen.same.tolist() == [True] and seen.when[0] == np.datetime64(T1.replace(tzinfo=None), "ms")
        assert [(s.target, s.count) for s in one.stats(all_targets=True)] == [
            (TARGET, 1),
            (other_key, 1),
            (other_port, 1),
        ]


def test_as_of_ignores_entries_acknowledged_later(ledger: Ledger) -> None:
    # SPEC 13: a resumed run sees the ledger as it was when its progress log began
    ledger.record("activities", ids("e1"), recs("{1}"), T1)
    ledger.record("activities", ids("e2"), recs("{2}"), T2)
    ledger.record("activities", ids("e1"), recs("{1b}"), T2)  # overwritten after the log began: unknown
    log_began = T1 + timedelta(hours=1)
    seen = ledger.lookup("activities", ids("e1", "e2"), recs("{1b}", "{2}"), as_of=log_began)
    assert seen.known.tolist() == [False, False]
    assert np.isnat(seen.when).all()
    assert ledger.lookup("activities", ids("e1", "e2"), recs("{1b}", "{2}"), as_of=T2).same.tolist() == [True, True]
    assert ledger.lookup("activities", ids("e1", "e2"), recs("{1b}", "{2}")).same.tolist() == [True, True]


def test_lookups_from_worker_threads(ledger: Ledger) -> None:
    names = pa.array([f"c{i}" for i in range(5000)])
    hashes = record_hashes(pa.array([f"{{{i}}}" for i in range(5000)]))
    ledger.record("customers", names, hashes, T1)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda k: ledger.lookup("customers", names[k::4], hashes[k::4]), range(4)))
    assert all(r.same.all() for r in results)
    assert sum(len(r.same) for r in results) == 5000


def test_a_hundred_thousand_ids_round_trip_quickly(ledger: Ledger) -> None:
    names = pa.array([f"fx_{i:08d}" for i in range(100_000)])
    hashes = np.arange(100_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    t0 = time.perf_counter()
    for lo in range(0, 100_000, 500):
        ledger.record("customers", names[lo : lo + 500], hashes[lo : lo + 500], T1)
    changed = hashes.copy()
    changed[::100] += np.uint64(1)
    seen = [
        ledger.lookup("customers", names[lo : lo + 12_288], changed[lo : lo + 12_288])
        for lo in range(0, 100_000, 12_288)
    ]
    elapsed = time.perf_counter() - t0
    assert sum(int(s.known.sum()) for s in seen) == 100_000
    assert sum(int((~s.same).sum()) for s in seen) == 1000
    assert elapsed < 10, f"100k ids took {elapsed:.1f} s"  # ~1.5 s on the 2-core machines


# --- stats and forget -----------------------------------------------------------------


def test_stats_per_target_and_kind(ledger: Ledger) -> None:
    assert [(s.kind, s.count, s.oldest) for s in ledger.stats()] == [("customers", 0, None), ("activities", 0, None)]
    ledger.record("activities", ids("e1", "e2"), recs("{1}", "{2}"), T1)
    ledger.record("activities", ids("e3"), recs("{3}"), T2)
    customers, activities = ledger.stats()
    assert (customers.kind, customers.count, customers.newest) == ("customers", 0, None)
    assert (activities.target, activities.kind, activities.count) == (TARGET, "activities", 3)
    assert (activities.oldest, activities.newest) == (T1.replace(microsecond=0), T2)


def filled(ledger: Ledger) -> None:
    ledger.record("customers", ids("c1", "c2", "c3"), recs("{1}", "{2}", "{3}"), T1)
    ledger.record("customers", ids("c4"), recs("{4}"), T2)
    ledger.record("activities", ids("e1", "e2"), recs("{1}", "{2}"), T1)


def counts(ledger: Ledger) -> dict[str, int]:
    return {s.kind: s.count for s in ledger.stats()}


def test_forget_ids_of_a_kind(ledger: Ledger) -> None:
    filled(ledger)
    assert ledger.forget("customers", ids=["c1", "c4", "never"]) == 2
    assert counts(ledger) == {"customers": 2, "activities": 2}
    assert ledger.lookup("customers", ids("c1", "c2"), recs("{1}", "{2}")).known.tolist() == [False, True]


def test_forget_a_kind(ledger: Ledger) -> None:
    filled(ledger)
    assert ledger.forget("customers") == 4
    assert counts(ledger) == {"customers": 0, "activities": 2}
    ledger.record("customers", ids("c1"), recs("{1}"), T2)  # the kind can be written again
    assert counts(ledger) == {"customers": 1, "activities": 2}


def test_forget_before_a_date_is_utc_midnight(ledger: Ledger) -> None:
    filled(ledger)
    assert ledger.forget(before=date(2025, 7, 1)) == 0
    assert ledger.forget("activities", before=date(2025, 7, 2)) == 2
    assert ledger.forget(before=date(2025, 7, 2)) == 3
    assert counts(ledger) == {"customers": 1, "activities": 0}


def test_forget_ids_before_a_date(ledger: Ledger) -> None:
    filled(ledger)
    assert ledger.forget("customers", ids=["c1", "c4"], before=date(2025, 7, 2)) == 1
    assert counts(ledger)["customers"] == 3


def test_forget_all_only_touches_this_target(ledger: Ledger, path: Path) -> None:
    filled(ledger)
    with Ledger.open(path, Target.of("https://other", "key-one")) as other:
        other.record("customers", ids("c1"), recs("{1}"), T1)
    assert ledger.forget(all=True) == 6
    assert counts(ledger) == {"customers": 0, "activities": 0}
    assert [(s.target.host, s.count) for s in ledger.stats(all_targets=True)] == [("other", 1)]


def test_forget_gives_the_space_back(ledger: Ledger, path: Path) -> None:
    names = pa.array([f"c{i}" for i in range(50_000)])
    ledger.record("customers", names, np.arange(50_000, dtype=np.uint64), T1)
    big = path.stat().st_size + path.with_name(path.name + "-wal").stat().st_size
    assert ledger.forget(all=True) == 50_000
    ledger.close()
    assert path.stat().st_size < big / 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "say what to forget: --kind K (with --id ID), --before YYYY-MM-DD, or --all."),
        ({"ids": ["c1"]}, "--id needs --kind (customers or activities)."),
        ({"all": True, "before": date(2025, 1, 1)}, "--all removes everything: leave out --id and --before."),
    ],
)
def test_forget_says_what_it_needs(ledger: Ledger, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as err:
        ledger.forget(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


# --- read-only: validate reads and never writes ---------------------------------------


def test_read_only_on_a_missing_file_is_empty_and_creates_nothing(path: Path) -> None:
    with Ledger.open(path, TARGET, read_only=True) as led:
        assert led.lookup("customers", ids("c1"), recs("{}")).known.tolist() == [False]
        assert [s.count for s in led.stats()] == [0, 0]
        with pytest.raises(LedgerError, match="is open read-only"):
            led.record("customers", ids("c1"), recs("{}"))
    assert not path.parent.exists()


def test_read_only_never_writes_the_file(path: Path) -> None:
    with Ledger.open(path, TARGET) as led:
        filled(led)
    before = listing(path.parent)
    assert list(before) == ["ledger.sqlite"]  # the writer left no -wal/-shm behind
    time.sleep(0.01)
    with Ledger.open(path, TARGET, read_only=True) as led:
        assert led.lookup("customers", ids("c1", "c9"), recs("{1}", "{9}")).same.tolist() == [True, False]
        assert counts(led) == {"customers": 4, "activities": 2}
        with pytest.raises(LedgerError, match="is open read-only"):
            led.forget(all=True)
    assert listing(path.parent) == before


def test_read_only_beside_a_writer_sees_its_commits(path: Path) -> None:
    with Ledger.open(path, TARGET) as writer, Ledger.open(path, TARGET, read_only=True) as reader:
        writer.record("customers", ids("c1"), recs("{1}"), T1)
        assert reader.lookup("customers", ids("c1"), recs("{1}")).same.tolist() == [True]


# --- robustness: one sentence naming the file -----------------------------------------


def test_a_corrupt_file_is_one_sentence(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, it only sits where one should be\n" * 100)
    for read_only in (False, True):
        with pytest.raises(LedgerError) as err:
            Ledger.open(path, TARGET, read_only=read_only)
        assert err.value.message == f"cannot use the ledger {path}: it is not a SQLite database."
        assert err.value.hint == (
            "Move it aside (t360 then starts an empty ledger and sends every record once more), or restore a backup."
        )
        assert isinstance(err.value, T360Error) and isinstance(err.value.__cause__, sqlite3.DatabaseError)


def test_another_programs_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="it is a SQLite database of another program"):
        Ledger.open(path, TARGET)


def test_a_newer_format_is_refused(path: Path) -> None:
    Ledger.open(path, TARGET).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 9")
    con.close()
    with pytest.raises(LedgerError, match=r"it was written by a newer t360 \(ledger format 9\)"):
        Ledger.open(path, TARGET, read_only=True)


def test_a_locked_ledger_is_one_sentence(path: Path) -> None:
    with Ledger.open(path, TARGET, busy_timeout_s=0.05) as led:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(LedgerError) as err:
                led.record("customers", ids("c1"), recs("{}"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert str(err.value) == (
            f"cannot use the ledger {path}: another process holds it locked. "
            "Wait for the other t360 run to finish, then run the same command again."
        )
        assert led.record("customers", ids("c1"), recs("{}")) == 1  # usable once the lock is gone


def test_a_folder_at_the_ledger_path(path: Path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(LedgerError, match=f"cannot use the ledger {path}: it cannot be opened"):
        Ledger.open(path, TARGET)


def test_a_symlink_at_the_ledger_path_is_refused(tmp_path: Path, path: Path) -> None:
    real = tmp_path / "elsewhere.sqlite"
    Ledger.open(real, TARGET).close()
    path.parent.mkdir(parents=True)
    path.symlink_to(real)
    for read_only in (False, True):
        with pytest.raises(UnsafePath, match=f"refusing the ledger {path}: it is a symbolic link"):
            Ledger.open(path, TARGET, read_only=read_only, state_dir=path.parent)


def test_a_new_ledger_is_private(path: Path) -> None:
    Ledger.open(path, TARGET).close()
    assert path.stat().st_mode & 0o777 == 0o600
    if os.name == "posix":
        assert sqlite3.connect(path).execute("PRAGMA auto_vacuum").fetchone() == (1,)
