"""Shared output for benchmarks: a readable table on stdout and JSON in ``bench/results/``."""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples`` by nearest rank."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    return {
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 3) if seconds else float("nan"),
    }


_HISTOGRAMS: dict[str, dict[str, list[float]]] = {}
HISTOGRAM_EDGES_MS = [0.1 * 10 ** (i / 10) for i in range(61)]
"""Log-spaced bucket edges from 0.1 ms to 100 s, ten per decade."""


def record_latencies(label: str, seconds: list[float]) -> None:
    """Keep a histogram of ``seconds`` for the results file (``make bench`` plots them)."""
    counts = [0] * (len(HISTOGRAM_EDGES_MS) - 1)
    for value in seconds:
        ms = value * 1000
        index = bisect.bisect_right(HISTOGRAM_EDGES_MS, ms) - 1
        counts[min(len(counts) - 1, max(0, index))] += 1
    _HISTOGRAMS[label] = {"edges_ms": [round(e, 4) for e in HISTOGRAM_EDGES_MS], "counts": counts}


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, memory, load while measuring, Python, platform."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, ValueError):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().split("\n")
        info["memory_gib"] = round(int(meminfo[0].split()[1]) / 2**20, 1)
    return info


def write_results(name: str, rows: list[dict[str, Any]], **context: Any) -> Path:
    """Print ``rows`` as a table and write them with machine context to ``results/<name>.json``
    (with the histograms :func:`record_latencies` kept)."""
    print_table(rows)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "context": context,
        "results": rows,
        "histograms": dict(_HISTOGRAMS),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"-> {path}")
    return path


def print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row_cells in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row_cells, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
