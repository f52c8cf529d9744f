"""Seeded generator of large, realistic broker exports for the benchmark.

    python bench/gen.py activities --rows 1000000 --seed 1 -o bench/out/activities_1m.csv
    python bench/gen.py customers  --rows 200000
    python bench/gen.py trades     --rows 1000000
    python bench/gen.py xlsx       --rows 100000

Each file has ~2% bad rows (bad amount, unknown currency, empty login, bad date...),
~1% exact duplicate rows, some conflicting ids, and rows that the mapping's `where`
filters out. Beside each file, `<file>.expected.json` holds the counts that
`t360 validate` with the matching bench/*.yaml mapping must report.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import genlib as g  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"

TYPES, TYPE_P = ["Deposit", "Withdrawal", "Bonus", "Rebate"], [45, 25, 10, 20]
STATUSES = ["Approved", "Completed", "Pending", "Rejected", "Cancelled"]
STATUS_P = [70, 22, 4, 3, 1]
CCYS, CCY_P = ["USD", "EUR", "GBP", "JPY", "AUD", "CHF"], [60, 25, 7, 3, 3, 2]
METHODS = ["VISA", "MASTERCARD", "WIRE", "SKRILL", "NETELLER", "CRYPTO", "INTERNAL"]
COMMENTS = [
    "",
    "",
    "",
    "",
    "",
    "Card ****4242",
    "Auto-approved by PSP",
    "Welcome bonus, 30%",
    'Client says "urgent"',
    "Manual adjustment; desk 2",
    "IB rebate July",
]
BAD_AMOUNT = ["12,34", "1.234,50", "n/a", "100.00 USD", "-"]
BAD_CCY = ["USDT", "EURO", "US$", "BTC"]
BAD_DATE = ["2025-02-30 10:00:00", "31/07/2025 10:00", "0000-00-00 00:00:00", "N/A"]


def _amount_cents(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(np.exp(rng.normal(10.3, 1.2, n)), 100, 5e7).astype(np.int64)


def _money_rows(
    rng: np.random.Generator, rows: int, dup: float, conf: float, bad: float
) -> tuple[g.Plan, dict[str, np.ndarray], dict[str, int]]:
    """Base arrays of a transaction export laid out by a plan, and the expected counts."""
    n, n_dup, n_conf = g.base_size(rows, dup, conf)
    status = g.choice(rng, STATUSES, n, STATUS_P)
    kept = status < 2
    bad_kind = np.where(rng.random(n) < bad, rng.integers(1, 5, n), 0)
    plan = g.make_plan(rng, (bad_kind == 0) & kept, n_dup, n_conf)
    kind = g.choice(rng, TYPES, n, TYPE_P)
    method = np.where(kind >= 2, 6, rng.integers(0, 6, n))
    base = {
        "txn": np.arange(n) + 10_000_000,
        "login": rng.integers(5_000_000, 5_150_000, n),
        "kind": kind,
        "secs": g.seconds(rng, n),
        "cents": _amount_cents(rng, n),
        "ccy": g.choice(rng, CCYS, n, CCY_P),
        "method": method,
        "status": status,
        "comment": rng.integers(0, len(COMMENTS), n),
        "bad": bad_kind,
        "u": rng.random(n),
    }
    cols = {k: plan.take(v) for k, v in base.items()}
    cols["cents"][plan.conflict] += rng.integers(100, 50_000, int(plan.conflict.sum()))
    expected = {
        "rows_valid": rows - int((~kept).sum()) - int(((bad_kind > 0) & kept).sum()) - n_dup - n_conf,
        "rows_rejected": int(((bad_kind > 0) & kept).sum()) + n_conf,
        "rows_filtered": int((~kept).sum()),
        "rows_duplicate": n_dup,
    }
    return plan, cols, expected


def activities(rows: int, seed: int, path: Path) -> dict[str, int]:
    """Transactions: Txn ID, Login, Type, Date, Amount, Ccy, Method, Status, Comment."""
    rng = np.random.default_rng(seed)
    _, c, expected = _money_rows(rng, rows, 0.01, 0.002, 0.02)
    bad = c["bad"]
    g.write_csv(
        path,
        {
            "Txn ID": pc.binary_join_element_wise("TX", g.text(c["txn"]), ""),
            "Login": g.corrupt(g.text(c["login"]), bad == 3, rng, [""]),
            "Type": g.labels(TYPES, c["kind"]),
            "Date": g.corrupt(g.stamp(c["secs"]), bad == 4, rng, BAD_DATE),
            "Amount": g.corrupt(g.money(c["cents"]), bad == 1, rng, BAD_AMOUNT),
            "Ccy": g.corrupt(g.labels(CCYS, c["ccy"]), bad == 2, rng, BAD_CCY),
            "Method": g.labels(METHODS, c["method"]),
            "Status": g.labels(STATUSES, c["status"]),
            "Comment": g.labels(COMMENTS, c["comment"]),
        },
    )
    return expected


FIRST = [
    "Maria",
    "José",
    "Alex",
    "Chen",
    "Fatima",
    "Lukas",
    "Sofia",
    "Ahmed",
    "Olga",
    "Juan",
    "Priya",
    "Tomás",
    "Emma",
    "Kwame",
    "Anna",
    "Mehmet",
    "Léa",
    "Ivan",
    "Aisha",
    "Noah",
]
LAST = [
    "S",
    "García",
    "Taylor",
    "Wang",
    "Khan",
    "Müller",
    "Rossi",
    "Haddad",
    "Ivanova",
    "Pérez",
    "Sharma",
    "Novák",
    "Dubois",
    "Mensah",
    "Kowalska",
    "Yılmaz",
    "Smith",
    "Lee",
]
COUNTRIES = [
    "DE",
    "ES",
    "IT",
    "FR",
    "GB",
    "PL",
    "NL",
    "AE",
    "ZA",
    "NG",
    "MY",
    "TH",
    "BR",
    "MX",
    "CO",
    "CL",
    "AU",
    "JP",
    "es",
    "DEU",
    "ESP",
    "Germany",
    "Spain",
    "Brazil",
]
BAD_COUNTRY = ["Atlantis", "Narnia", "Europe"]
LONG_TAG = [
    "2001_1000_abcdefg_utm_source=google_utm_medium=cpc_summer2025",
    "campaign_7_aff_42_creative_b_landing_page_v3_variant_long_b",
]
SALES = ["New", "Contacted", "No Answer", "Deposited", "VIP"]


def _tracking(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """Values like `2001_1000_abcdefg`; about 12% empty (unattributed)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    tokens = ["".join(t) for t in rng.choice(letters, size=(2000, 7))]
    tag = pc.binary_join_element_wise(
        g.text(rng.integers(2001, 2100, n)),
        g.text(rng.integers(1000, 2000, n)),
        g.labels(tokens, rng.integers(0, 2000, n)),
        "_",
    )
    empty = rng.random(n) < 0.12
    return pc.if_else(pa.array(empty), "", tag), empty


def customers(rows: int, seed: int, path: Path) -> dict[str, int]:
    """CRM export: Login, Registration Date, names, Email, Country, Campaign, type, status."""
    rng = np.random.default_rng(seed)
    n, n_dup, n_upd = g.base_size(rows, 0.008, 0.002)
    real = rng.random(n) >= 0.06
    bad_kind = np.where(rng.random(n) < 0.02, rng.integers(1, 5, n), 0)
    plan = g.make_plan(rng, (bad_kind == 0) & real, n_dup, n_upd)
    tag, no_tag = _tracking(rng, n)
    idx = plan.take(np.arange(n))
    sales = plan.take(rng.integers(0, len(SALES), n))
    sales[plan.conflict] = (sales[plan.conflict] + 1) % len(SALES)  # a later status update
    login = g.text(plan.take(2_000_000 + rng.permutation(n)))
    first, last = (
        g.labels(FIRST, plan.take(rng.integers(0, len(FIRST), n))),
        g.labels(LAST, plan.take(rng.integers(0, len(LAST), n))),
    )
    email = pc.binary_join_element_wise(
        pc.binary_join_element_wise(pc.utf8_lower(first), pc.utf8_lower(last), login, "."), "@example.com", ""
    )
    bad = plan.take(bad_kind)
    g.write_csv(
        path,
        {
            "Login": g.corrupt(login, bad == 3, rng, [""]),
            "Registration Date": g.corrupt(g.stamp(plan.take(g.seconds(rng, n))), bad == 4, rng, BAD_DATE),
            "First Name": first,
            "Last Name": last,
            "Email": email,
            "Country": g.corrupt(
                g.labels(COUNTRIES, plan.take(rng.integers(0, len(COUNTRIES), n))), bad == 2, rng, BAD_COUNTRY
            ),
            "Campaign": g.corrupt(pc.take(tag, pa.array(idx)), bad == 1, rng, LONG_TAG),
            "Account Type": g.labels(["Demo", "Real"], plan.take(real.astype(np.int64))),
            "Sales Status": g.labels(SALES, sales),
        },
    )
    # An exact copy is a duplicate; a re-listing with a new status is valid, sent after the
    # original so that its values win (t360 orders customers by customerId, SPEC 5).
    clean = (bad_kind == 0) & real
    return {
        "rows_valid": int(clean.sum()) + n_upd,
        "rows_rejected": int(((bad_kind > 0) & real).sum()),
        "rows_filtered": int((~real).sum()),
        "rows_duplicate": n_dup,
        "unattributed_customers": int((clean & no_tag).sum()),
    }


# symbol: (product line, contract size, price in USD, rebate per lot in USD)
SYMBOLS = {
    "EURUSD": ("FX", 100_000, 1.08, 7),
    "GBPUSD": ("FX", 100_000, 1.27, 7),
    "USDJPY": ("FX", 100_000, 1.0, 7),
    "AUDUSD": ("FX", 100_000, 0.66, 7),
    "XAUUSD": ("Metals", 100, 2350.0, 10),
    "XAGUSD": ("Metals", 5000, 29.0, 10),
    "US30": ("CFD", 1, 39000.0, 2),
    "NAS100": ("CFD", 1, 18000.0, 2),
    "GER40": ("CFD", 1, 18500.0, 2),
    "BTCUSD": ("Crypto", 1, 65000.0, 5),
    "ETHUSD": ("Crypto", 1, 3400.0, 5),
}
SYMBOL_P = [30, 12, 10, 6, 14, 3, 6, 6, 4, 6, 3]


def _signed(cents: np.ndarray) -> pa.Array:
    body = g.money(np.abs(cents))
    return pc.if_else(pa.array(cents < 0), pc.binary_join_element_wise("-", body, ""), body)


def trades(rows: int, seed: int, path: Path) -> dict[str, int]:
    """Closed trades, one row each, for DailyStats aggregation (bench/trades.yaml)."""
    rng = np.random.default_rng(seed)
    names = list(SYMBOLS)
    sym = g.choice(rng, names, rows, SYMBOL_P)
    spec = np.array([SYMBOLS[s][1:] for s in names], dtype=np.float64)[sym]
    lots = np.clip(np.exp(rng.normal(-0.5, 1.1, rows)) * 100, 1, 5000).astype(np.int64)
    volume = np.round(lots * spec[:, 0] * spec[:, 1]).astype(np.int64)  # lots are in 1/100
    rebate = lots * spec[:, 2].astype(np.int64)
    close = g.seconds(rng, rows) + 3600
    bad = np.where(rng.random(rows) < 0.01, rng.integers(1, 4, rows), 0)
    g.write_csv(
        path,
        {
            "Ticket": g.text(np.arange(rows) + 80_000_000),
            "Login": g.corrupt(
                g.text(rng.integers(5_000_000, 5_003_000, rows)), bad == 1, rng, [""]
            ),  # 3,000 active traders: several trades per day each
            "Symbol": g.corrupt(g.labels(names, sym), bad == 2, rng, ["EURUSD.x", "SPX500"]),
            "Type": g.labels(["Buy", "Sell"], rng.integers(0, 2, rows)),
            "Open Time": g.stamp(close - rng.integers(60, 3600, rows)),
            "Close Time": g.stamp(close),
            "Lots": g.corrupt(g.money(lots), bad == 3, rng, ["0,5", "n/a"]),
            "Volume": g.money(volume),
            "Rebate": g.money(rebate),
            "Profit": _signed(np.round(rng.normal(0, 40, rows) * lots).astype(np.int64)),
        },
    )
    return {
        "rows_valid": int((bad == 0).sum()),
        "rows_rejected": int((bad > 0).sum()),
        "rows_filtered": 0,
        "rows_duplicate": 0,
    }


def trades_fixed(rows: int, seed: int, path: Path) -> dict[str, int]:
    """Closed trades over a fixed set of groups: 250 traders, 20 days, 4 product lines.

    Same columns and bad rows as `trades`; at most 20,000 DailyStats groups whatever
    --rows, so the aggregate's memory must not grow with the file (bench/mapping_power.py).
    """
    rng = np.random.default_rng(seed)
    names = list(SYMBOLS)
    sym = g.choice(rng, names, rows, SYMBOL_P)
    spec = np.array([SYMBOLS[s][1:] for s in names], dtype=np.float64)[sym]
    lots = np.clip(np.exp(rng.normal(-0.5, 1.1, rows)) * 100, 1, 5000).astype(np.int64)
    login = rng.integers(5_000_000, 5_000_250, rows)
    close = rng.integers(0, 20 * 86400, rows) + 30 * 86400  # 20 whole days from May 1st
    bad = np.where(rng.random(rows) < 0.01, rng.integers(1, 4, rows), 0)
    product = np.array([["FX", "Metals", "CFD", "Crypto"].index(SYMBOLS[s][0]) for s in names])[sym]
    valid = bad == 0
    day = close // 86400 - 30
    groups = np.unique((((login - 5_000_000) * 20 + day) * 4 + product)[valid])
    g.write_csv(
        path,
        {
            "Ticket": g.text(np.arange(rows) + 80_000_000),
            "Login": g.corrupt(g.text(login), bad == 1, rng, [""]),
            "Symbol": g.corrupt(g.labels(names, sym), bad == 2, rng, ["EURUSD.x", "SPX500"]),
            "Type": g.labels(["Buy", "Sell"], rng.integers(0, 2, rows)),
            "Open Time": g.stamp(close - rng.integers(60, 3600, rows)),
            "Close Time": g.stamp(close),
            "Lots": g.corrupt(g.money(lots), bad == 3, rng, ["0,5", "n/a"]),
            "Volume": g.money(np.round(lots * spec[:, 0] * spec[:, 1]).astype(np.int64)),
            "Rebate": g.money(lots * spec[:, 2].astype(np.int64)),
            "Profit": _signed(np.round(rng.normal(0, 40, rows) * lots).astype(np.int64)),
        },
    )
    return {
        "rows_valid": int(valid.sum()),
        "rows_rejected": int((~valid).sum()),
        "rows_filtered": 0,
        "rows_duplicate": 0,
        "records_valid": len(groups),
    }


PRODUCT_LINES = ["Forex", "Metals", "Indices", "Crypto"]
DAYS_30 = [(g.FIRST_DAY + timedelta(days=d)).isoformat() for d in range(30)]
GROUPS = ["real\\standard", "real\\pro", "demo\\standard"]


def wide(rows: int, seed: int, path: Path) -> dict[str, int]:
    """Daily trading report, one wide row per account, day and product line (bench/events.yaml).

    Report Date, Login, Group, Product Line, Lots, Volume ("2,486,000.00"), Rebate, Trades, Ccy.
    Each base row has its own (login, day, product line), so records never collide by chance.
    ~1% bad (lots `#N/A`, product `Bonds`, empty login, date `2025-07-32`); ~4% demo and ~1%
    with every KPI empty (both filtered); 5% without rebate (no Rebate event); 1% duplicates.
    """
    rng = np.random.default_rng(seed)
    n, n_dup, _ = g.base_size(rows, 0.01, 0.0)
    cat = g.choice(rng, ["clean", "demo", "empty", "bad"], n, [94, 4, 1, 1])
    plan = g.make_plan(rng, cat == 0, n_dup, 0)
    key = rng.permutation(n)  # (login, day, product line) of each base row, all distinct
    lots = np.clip(np.exp(rng.normal(1.5, 1.2, n)) * 100, 1, 500_000).astype(np.int64)
    no_rebate = (cat == 0) & (rng.random(n) < 0.05)
    bad = np.where(cat == 3, rng.integers(1, 5, n), 0)
    group = np.where(cat == 1, 2, rng.integers(0, 2, n))
    c = {
        k: plan.take(v)
        for k, v in {"key": key, "lots": lots, "bad": bad, "group": group, "cat": cat, "norebate": no_rebate}.items()
    }
    empty, b = c["cat"] == 2, c["bad"]

    def kpi(col: pa.Array, blank: np.ndarray = empty) -> pa.Array:
        return pc.if_else(pa.array(blank), "", col)

    g.write_csv(
        path,
        {
            "Report Date": g.corrupt(g.labels(DAYS_30, c["key"] // 4 % 30), b == 4, rng, ["2025-07-32"]),
            "Login": g.corrupt(g.text(6_000_000 + c["key"] // 120), b == 3, rng, [""]),
            "Group": g.labels(GROUPS, c["group"]),
            "Product Line": g.corrupt(g.labels(PRODUCT_LINES, c["key"] % 4), b == 2, rng, ["Bonds"]),
            "Lots": kpi(g.corrupt(g.money(c["lots"]), b == 1, rng, ["#N/A"])),
            "Volume": kpi(g.money(c["lots"] * 110_000, ".", ",")),
            "Rebate": kpi(g.money(c["lots"] * 2), empty | c["norebate"]),
            "Trades": g.text(1 + c["lots"] % 57),
            "Ccy": g.labels(["USD"], np.zeros(rows, np.int64)),
        },
    )
    clean = int((cat == 0).sum())
    return {
        "rows_valid": clean,
        "rows_rejected": int((cat == 3).sum()),
        "rows_filtered": int(((cat == 1) | (cat == 2)).sum()),
        "rows_duplicate": n_dup,
        "records_valid": 3 * clean - int(no_rebate.sum()),
    }


def xlsx(rows: int, seed: int, path: Path) -> dict[str, int]:
    """Deposits workbook, European formats: text `1.234,50` and `21.07.2025 08:46` cells."""
    from openpyxl import Workbook

    rng = np.random.default_rng(seed)
    _, c, expected = _money_rows(rng, rows, 0.01, 0.002, 0.02)
    bad = c["bad"]
    numeric = (c["u"] < 0.3) & (bad != 1)  # amounts as numeric cells; copies alike
    amount = g.corrupt(g.money(c["cents"], ",", "."), bad == 1, rng, ["1,234.50", "n/a"])
    amount = [
        v / 100 if num else s
        for v, num, s in zip(c["cents"].tolist(), numeric.tolist(), amount.to_pylist(), strict=True)
    ]
    login = [
        v if u > 0.5 and b != 3 else s
        for v, u, b, s in zip(  # half as numeric cells
            c["login"].tolist(),
            c["u"].tolist(),
            bad.tolist(),
            g.corrupt(g.text(c["login"]), bad == 3, rng, [""]).to_pylist(),
            strict=True,
        )
    ]
    cols = [
        pc.binary_join_element_wise("DP-", g.text(c["txn"]), "").to_pylist(),
        login,
        g.corrupt(g.stamp(c["secs"], "eu", False), bad == 4, rng, ["32.07.2025 10:15", "31.06.2025 09:00"]).to_pylist(),
        amount,
        g.corrupt(g.labels(CCYS, c["ccy"]), bad == 2, rng, ["USDT", "EURO"]).to_pylist(),
        g.labels(METHODS, c["method"]).to_pylist(),
        g.labels(STATUSES, c["status"]).to_pylist(),
        g.labels(COMMENTS, c["comment"]).to_pylist(),
    ]
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Deposits")
    ws.append(["Txn ID", "Login", "Date", "Amount", "Ccy", "Method", "Status", "Comment"])
    for row in zip(*cols, strict=True):
        ws.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return expected


KINDS = {
    "activities": activities,
    "customers": customers,
    "trades": trades,
    "trades_fixed": trades_fixed,
    "wide": wide,
    "xlsx": xlsx,
}


def default_path(kind: str, rows: int) -> Path:
    size = f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"
    return OUT / f"{kind}_{size}.{'xlsx' if kind == 'xlsx' else 'csv'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    if args.rows < 1000:
        ap.error("--rows must be at least 1000")
    path = args.output or default_path(args.kind, args.rows)
    t0 = time.perf_counter()
    expected = KINDS[args.kind](args.rows, args.seed, path)
    g.write_expected(path, expected)
    print(f"{path}: {args.rows:,} rows in {time.perf_counter() - t0:.1f} s; expected {expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
