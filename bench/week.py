"""A week of nightly exports for `t360 run` (SPEC 13): the ledger sends only what changed.

    python bench/week.py OUT [--seed 1] [--customers 2000] [--base-url http://127.0.0.1:8360]

Writes, under OUT:

- `config.yaml`: `base_url` and an absolute `state_dir` (`OUT/state`), shared by every night;
- `nights/D/` for D = 1..7, each with
  - `customers-D.csv`: the whole customer table as it stands that night
    (`Client ID, Registered, Country, First Name, Last Name, Campaign`);
    night 1 holds `--customers` rows; every later night, about 1% of the customers
    have a new `Campaign` or `Country` and about 20 new customers appear;
  - `deposits-D.csv`: the deposits of the last 3 days, a rolling window
    (`Txn ID, Account, Date, Amount, Currency, Method`), with stable `Txn ID`s;
    300 new deposits a day, 10 of them for the customers new that night;
  - `customers.yaml`, `deposits.yaml` (the mappings) and `nightly.yaml` (the job);
- `expected.json`: per night, the rows of each file and what the ledger should let
  through: customers new or changed, deposits new (the overlap with the two days
  before is unchanged).

Run each night in turn against one sandbox and the shared state_dir:

    t360 sandbox --port 8360 &
    for d in 1 2 3 4 5 6 7; do t360 run OUT/nights/$d/nightly.yaml; done

Only the standard library and numpy; the same --seed gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

NIGHTS = 7
WINDOW_DAYS = 3  # a deposits export covers the night's day and the two before
DEPOSITS_PER_DAY = 300
NEW_CUSTOMERS_PER_NIGHT = 20
NEW_CUSTOMER_DEPOSITS = 10  # of the day's deposits, this many are for that night's new customers
CHANGED_SHARE = 0.01
FIRST_DAY = datetime(2025, 7, 1)  # night 1 exports the deposits of June 29 to July 1

COUNTRIES = ["ES", "DE", "FR", "IT", "PT", "NL", "PL", "GB", "AT", "BE"]
FIRST_NAMES = ["Ana", "Jonas", "Marie", "Luca", "Inês", "Sven", "Zofia", "Oliver", "Lea", "Mateo"]
LAST_NAMES = ["García", "Weber", "Dubois", "Rossi", "Silva", "de Vries", "Nowak", "Smith", "Huber", "Peeters"]
CURRENCIES = ["EUR", "USD", "GBP"]
METHODS = ["CC", "BT"]

CUSTOMERS_HEADER = ["Client ID", "Registered", "Country", "First Name", "Last Name", "Campaign"]
DEPOSITS_HEADER = ["Txn ID", "Account", "Date", "Amount", "Currency", "Method"]

CUSTOMERS_MAPPING = """kind: customers
fields:
  customerId: {template: "fx_{Client ID}"}
  regtime: {column: Registered, type: datetime}
  country: {column: Country, type: country}
  firstName: First Name
  lastName: Last Name
  tracking_data: Campaign
"""

DEPOSITS_MAPPING = """kind: activities
fields:
  customerid: {template: "fx_{Account}"}
  eventname: {value: Deposit}
  eventid: Txn ID
  createtime: {column: Date, type: datetime}
  Value: {column: Amount, type: decimal}
  Currency: {column: Currency, type: currency}
  deposit_type: {column: Method, map: {CC: credit_card, BT: bank_transfer}}
"""

JOB = """# night {night}: customers first, then the deposits of the last {window} days
config: ../../config.yaml
feeds:
  - {{name: customers, files: customers-{night}.csv, mapping: customers.yaml}}
  - {{name: deposits, files: deposits-{night}.csv, mapping: deposits.yaml}}
"""


class Week:
    """The evolving customer table and the deposits made so far, drawn from one generator."""

    def __init__(self, rng: np.random.Generator, customers: int) -> None:
        self.rng = rng
        self.customers: list[list[str]] = []
        self.deposits: dict[datetime, list[list[str]]] = {}
        self.next_txn = 1
        self.add_customers(customers, FIRST_DAY - timedelta(days=400), FIRST_DAY)

    def add_customers(self, n: int, since: datetime, until: datetime) -> list[str]:
        """Append n customers registered between since and until; return their ids."""
        rng, first = self.rng, len(self.customers) + 100001
        seconds = rng.integers(0, int((until - since).total_seconds()), size=n)
        ids = [str(first + i) for i in range(n)]
        for i, login in enumerate(ids):
            registered = (since + timedelta(seconds=int(seconds[i]))).strftime("%Y-%m-%d %H:%M")
            campaign = f"ib-{int(rng.integers(1, 60)):02d}" if rng.random() < 0.8 else ""
            self.customers.append(
                [
                    login,
                    registered,
                    COUNTRIES[int(rng.integers(len(COUNTRIES)))],
                    FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))],
                    LAST_NAMES[int(rng.integers(len(LAST_NAMES)))],
                    campaign,
                ]
            )
        return ids

    def change_customers(self, night: int) -> int:
        """Give about 1% of the existing customers a new Campaign or Country; return how many changed."""
        n = round(len(self.customers) * CHANGED_SHARE)
        for k, i in enumerate(self.rng.choice(len(self.customers), size=n, replace=False)):
            row = self.customers[int(i)]
            if self.rng.random() < 0.5:
                row[5] = f"promo-n{night}-{k}"  # a value no customer held before: always a change
            else:
                row[2] = str(next(c for c in self.rng.permutation(COUNTRIES) if c != row[2]))
        return n

    def add_deposits(self, day: datetime, new_ids: list[str]) -> None:
        """The day's deposits: stable Txn IDs, some of them for the customers new that day."""
        rng = self.rng
        new = set(new_ids)
        old = [row[0] for row in self.customers if row[0] not in new]
        accounts = [old[int(i)] for i in rng.integers(0, len(old), size=DEPOSITS_PER_DAY)]
        if new_ids:
            for j in range(NEW_CUSTOMER_DEPOSITS):
                accounts[j] = new_ids[j % len(new_ids)]
        seconds = np.sort(rng.integers(0, 86400, size=DEPOSITS_PER_DAY))
        cents = rng.integers(1000, 500000, size=DEPOSITS_PER_DAY)
        rows = []
        for j, account in enumerate(accounts):
            rows.append(
                [
                    f"D{self.next_txn:08d}",
                    account,
                    (day + timedelta(seconds=int(seconds[j]))).strftime("%Y-%m-%d %H:%M:%S"),
                    f"{cents[j] // 100}.{cents[j] % 100:02d}",
                    CURRENCIES[int(rng.integers(len(CURRENCIES)))],
                    METHODS[int(rng.integers(len(METHODS)))],
                ]
            )
            self.next_txn += 1
        self.deposits[day] = rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(out: Path, seed: int, customers: int, base_url: str) -> dict[str, dict[str, int]]:
    """Write the week under out; return the expected counts per night."""
    week = Week(np.random.default_rng(seed), customers)
    out.mkdir(parents=True, exist_ok=True)
    state = (out / "state").resolve()
    (out / "config.yaml").write_text(f"base_url: {base_url}\nstate_dir: {state}\n", encoding="utf-8")
    for back in range(WINDOW_DAYS - 1, 0, -1):  # the days before night 1 that its window covers
        week.add_deposits(FIRST_DAY - timedelta(days=back), [])
    expected: dict[str, dict[str, int]] = {}
    for night in range(1, NIGHTS + 1):
        day = FIRST_DAY + timedelta(days=night - 1)
        changed, new_ids = 0, []
        if night > 1:
            changed = week.change_customers(night)
            new_ids = week.add_customers(NEW_CUSTOMERS_PER_NIGHT, day, day + timedelta(hours=20))
        week.add_deposits(day, new_ids)
        window = [day - timedelta(days=back) for back in range(WINDOW_DAYS - 1, -1, -1)]
        deposits = [row for d in window for row in week.deposits[d]]
        folder = out / "nights" / str(night)
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / f"customers-{night}.csv", CUSTOMERS_HEADER, week.customers)
        write_csv(folder / f"deposits-{night}.csv", DEPOSITS_HEADER, deposits)
        (folder / "customers.yaml").write_text(CUSTOMERS_MAPPING, encoding="utf-8")
        (folder / "deposits.yaml").write_text(DEPOSITS_MAPPING, encoding="utf-8")
        (folder / "nightly.yaml").write_text(JOB.format(night=night, window=WINDOW_DAYS), encoding="utf-8")
        new_deposits = len(deposits) if night == 1 else DEPOSITS_PER_DAY
        expected[str(night)] = {
            "customers_rows": len(week.customers),
            "customers_sent": len(week.customers) if night == 1 else changed + len(new_ids),
            "deposits_rows": len(deposits),
            "deposits_sent": new_deposits,
        }
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the week into")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same files")
    parser.add_argument("--customers", type=int, default=2000, help="customers on night 1")
    parser.add_argument("--base-url", default="http://127.0.0.1:8360", help="written into config.yaml")
    args = parser.parse_args()
    expected = generate(args.out, args.seed, args.customers, args.base_url)
    for night, counts in expected.items():
        print(f"night {night}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
