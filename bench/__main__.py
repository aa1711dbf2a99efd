"""Run every benchmark (``bench/bench_*.py``) in turn and print one summary.

Each benchmark is its own module, runnable alone (``python -m bench.bench_kafka``); it measures
its subject and a baseline in the same run, prints a table and writes
``bench/results/<name>.json``; at the end :mod:`bench.summary` writes ``latest.json``,
``latest.md`` and ``latency.png`` from them. ``--quick`` shortens every run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import summary

BENCH_DIR = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    modules = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if args.names:
        modules = [m for m in modules if m.removeprefix("bench_") in args.names or m in args.names]
    failed = []
    for module in modules:
        print(f"\n### {module}", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", f"bench.{module}", *(["--quick"] if args.quick else [])]
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(module)
        print(f"({module} took {time.monotonic() - started:.1f} s)", flush=True)
    summary.main()
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
