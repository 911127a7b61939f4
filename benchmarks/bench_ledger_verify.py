"""Benchmark: `ledger verify`'s memory as the ledger grows, streamed against loaded whole.

Fills SQLite ledgers of each size with keyed rows (decision bodies of about 1.5 KB, as the
service writes), then, each in a fresh process and in alternation, walks the chain the way
`Ledger.verify` does (rows streamed) and the way it did before (every row loaded into a
list first). Prints the median peak resident memory above the process's start for each,
and their ratio, over --runs runs.

    python benchmarks/bench_ledger_verify.py [--rows 20000 80000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BODY = {"response": {"reasons": [{"code": "X" * 20, "text": "y" * 60}] * 4},
        "feature_vector": {f"f{i}": i * 0.123456789 for i in range(41)}}  # fmt: skip


def fill(path: Path, rows: int) -> None:
    from scoring.ledger.repo import Ledger
    from scoring.ledger.writer import Entry
    from training.signing import SigningKey

    key = SigningKey.read(path.parent / "signing.key", create=True)
    book = Ledger(f"sqlite:///{path}", key=key)
    book.migrate()
    for start in range(0, rows, 1000):
        entries = [Entry.of(key_id="k", org_id="k", idempotency_key=f"i{n}", request={"n": n},
                            bodies=[(f"d{n:08}", "score", BODY)])
                   for n in range(start, min(start + 1000, rows))]  # fmt: skip
        book.submit_many(entries).result()
    book.close()


def measure(path: Path, how: str) -> tuple[float, float]:
    """MB of peak resident memory a fresh process adds to walk the chain (above its peak
    after imports and opening the ledger), and its whole peak."""
    code = f"""
import resource, sqlalchemy as sa
from pathlib import Path
from scoring.ledger.repo import Ledger
from scoring.ledger.chain import verify_rows
from scoring.ledger.tables import decisions
from training.signing import SigningKey
key = SigningKey.read(Path({str(path.parent)!r}) / "signing.key")
book = Ledger("sqlite:///{path}", key=key)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if {how!r} == "streamed":
    report = book.verify()
else:
    with book.reader.connect() as conn:
        query = sa.select(decisions).order_by(decisions.c.seq)
        rows = [dict(r._mapping) for r in conn.execute(query)]
    report = verify_rows(rows, key)
assert report.ok, report.problems[:3]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024, after / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added, peak = out.stdout.split()
    return float(added), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 80_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'rows':>8}  {'streamed: added / peak MB':>26}  {'loaded: added / peak MB':>24}")
        for rows in args.rows:
            path = Path(tmp) / str(rows) / "ledger.db"
            path.parent.mkdir()
            fill(path, rows)
            streamed, loaded = [], []
            for _ in range(args.runs):  # alternating, each in a fresh process
                streamed.append(measure(path, "streamed"))
                loaded.append(measure(path, "loaded"))
            s = [statistics.median(x) for x in zip(*streamed, strict=True)]
            m = [statistics.median(x) for x in zip(*loaded, strict=True)]
            print(f"{rows:>8}  {s[0]:>13.1f} / {s[1]:>9.1f}  {m[0]:>11.1f} / {m[1]:>9.1f}  "
                  f"(peak ratio {s[1] / m[1]:.2f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
