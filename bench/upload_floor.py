"""The upload floor: read a CSV export, serialise it as JSON bodies, POST them.

    python bench/upload_floor.py FILE.csv --url http://127.0.0.1:PORT/tracking/events/activities

The validate floor (bench/floor.py: `pyarrow.csv.open_csv`, every column as text,
1 MiB blocks, 500-row JSON arrays built column-wise with zip and orjson) plus the least
work that delivers them: one `httpx.AsyncClient`, 4 POSTs in flight, `content=` bytes,
an `x-api-key` header. No mapping, no validation, no retries, no progress log.
Prints one JSON line: rows, requests, bytes, failed (non-2xx answers or errors),
seconds and rows/s (time inside the process, imports excluded). Exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor import BATCH, bodies  # noqa: E402


async def upload(path: Path, url: str, inflight: int, key: str, timeout: float) -> dict:
    """POST every body of the file, `inflight` at a time; the figures of the run."""
    tally = {"rows": 0, "requests": 0, "bytes": 0, "failed": 0}
    slots = asyncio.Semaphore(inflight)
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    headers = {"x-api-key": key, "content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=timeout) as client:

        async def post(body: bytes) -> None:
            try:
                resp = await client.post(url, content=body)
                tally["failed"] += not resp.is_success
            except httpx.HTTPError:
                tally["failed"] += 1
            finally:
                slots.release()

        tasks = set()
        for n, body in bodies(path, BATCH):
            await slots.acquire()
            tally["rows"] += n
            tally["requests"] += 1
            tally["bytes"] += len(body)
            task = asyncio.create_task(post(body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--url", required=True, help="full URL the bodies are POSTed to")
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--api-key", default="bench-key")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tally = asyncio.run(upload(args.path, args.url, args.inflight, args.api_key, args.timeout))
    secs = time.perf_counter() - t0
    print(
        orjson.dumps(
            {**tally, "seconds": round(secs, 3), "rows_per_s": round(tally["rows"] / secs) if secs > 0 else 0}
        ).decode()
    )
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
