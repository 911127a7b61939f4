"""Benchmark: time and peak memory of building simulated worlds.

Each build runs in a fresh process (peak RSS of that process alone); the median of the
repeats is reported. No peer exists for this simulator, so no ratio is printed.

    python benchmarks/bench_simulate.py [--repeats 3] [--large]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORLDS = {
    "default (2,000 farmers, 4 counties imaged)": [],
    "100,000 farmers, 20 counties, 1 imaged": [
        "--farmers",
        "100000",
        "--counties",
        "20",
        "--imagery-counties",
        "1",
    ],
}


def _disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build_once(args: list[str]) -> tuple[float, float, float]:
    """Seconds, peak RSS (MB) and size on disk (MB) of one build in a child process."""
    out = Path(tempfile.mkdtemp()) / "world"
    code = (
        "import resource, sys\n"
        "from scoring.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "    raise\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "simulate", "--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.split("PEAK")[-1].split()[0])
    disk = _disk_mb(out)
    shutil.rmtree(out.parent)
    return seconds, peak_kb / 1024, disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also build the 100,000-farmer world")
    opts = parser.parse_args()
    results = {}
    for name, args in WORLDS.items():
        if args and not opts.large:
            continue
        runs = [build_once(args) for _ in range(opts.repeats if not args else 1)]
        seconds, peak, disk = (statistics.median(r[i] for r in runs) for i in range(3))
        results[name] = {
            "median_s": round(seconds, 2),
            "peak_rss_mb": round(peak),
            "disk_mb": round(disk),
            "runs": len(runs),
        }
        print(
            f"{name}: median {seconds:.1f} s over {len(runs)} run(s), "
            f"peak RSS {peak:.0f} MB, {disk:.0f} MB on disk"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
