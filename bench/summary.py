"""One report from the benchmarks' result files: ``bench/results/latest.json``, ``latest.md``
and ``latency.png``.

``latest.json`` holds every benchmark's payload (machine, context, rows, histograms) under its
name, with the machine the run was measured on; ``latest.md`` is the same as readable tables
(each benchmark's rows hold its baseline and the ratio against it); ``latency.png`` draws the
latency histograms the benchmarks kept (matplotlib, from the ``bench`` dependency group; the
plot is skipped with a note when it is not installed).

    uv run python -m bench.summary            # after benchmarks ran; python -m bench calls it
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR, machine

SKIP = {"latest"}


def load(results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    payloads = {}
    for path in sorted(results_dir.glob("*.json")):
        if path.stem in SKIP:
            continue
        try:
            payloads[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
    return payloads


def markdown(payloads: dict[str, Any], measured_on: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{measured_on.get('cpus')} cores, {measured_on.get('memory_gib', '?')} GiB, "
        f"Python {measured_on.get('python')}, load average {measured_on.get('load_average_1m')} "
        "(figures on a shared or loaded machine are lower; the ratios against the baselines "
        "measured in the same run are the figures to compare).",
        "",
    ]
    for name, payload in payloads.items():
        context = payload.get("context", {})
        lines += [
            f"## {name}",
            "",
            f"Measured {payload.get('measured_at')}; context: "
            + ", ".join(f"{k}={v}" for k, v in context.items() if not isinstance(v, dict | list)),
            "",
        ]
        lines += _table(payload.get("results", []))
        lines.append("")
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value).replace("|", "/")


def plot(payloads: dict[str, Any], path: Path) -> bool:
    """Latency histograms, one panel per benchmark that kept any; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(n, p["histograms"]) for n, p in payloads.items() if p.get("histograms")]
    if not panels:
        return False
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for axis, (name, histograms) in zip(axes[:, 0], panels, strict=True):
        for label, histogram in histograms.items():
            edges, counts = histogram["edges_ms"], histogram["counts"]
            total = sum(counts) or 1
            axis.stairs([c / total for c in counts], edges, label=label)
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms)")
        axis.set_ylabel("share of requests")
        axis.set_title(name)
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main() -> int:
    payloads = load()
    if not payloads:
        print(f"no results in {RESULTS_DIR}: run `make bench` first", file=sys.stderr)
        return 1
    measured_on = machine()
    latest = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": measured_on,
        "benchmarks": payloads,
    }
    (RESULTS_DIR / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    (RESULTS_DIR / "latest.md").write_text(markdown(payloads, measured_on))
    print(f"-> {RESULTS_DIR / 'latest.json'}\n-> {RESULTS_DIR / 'latest.md'}")
    if plot(payloads, RESULTS_DIR / "latency.png"):
        print(f"-> {RESULTS_DIR / 'latency.png'}")
    else:
        print("latency.png skipped (no histograms, or matplotlib missing: uv sync --group bench)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
