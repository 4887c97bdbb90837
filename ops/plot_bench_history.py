"""Plot the benchmark history: docs/benchmarks/history/*.json → docs/benchmarks/history.svg.

Each history file is one run's `polymon bench --report` JSON, named YYYY-MM-DD-<n>.json
(the n-th recorded run of that day), optionally with a ``label`` saying what changed.
The plot has two panels over the runs in order: the pipeline's events/s (and per worker
CPU second), and its ratio to the raw aiokafka loop of the same run, one series per
broker engine. Standard library only: the SVG is written by hand.

    .venv/bin/python ops/plot_bench_history.py [--history DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ROOT / "docs" / "benchmarks" / "history"
OUT = ROOT / "docs" / "benchmarks" / "history.svg"
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-(\d+)\.json$")
COLOURS = {"embedded": "#1f77b4", "kafka": "#d62728"}
FALLBACK_COLOURS = ("#2ca02c", "#9467bd", "#8c564b")

WIDTH, LEFT, RIGHT = 960, 90, 30
PANEL_HEIGHT, TOP, GAP, BOTTOM = 220, 50, 60, 120


def load_history(directory: Path) -> list[dict]:
    """The reports in run order (date, then the day's run number)."""
    runs = []
    for path in directory.glob("*.json"):
        match = NAME.match(path.name)
        if not match:
            raise SystemExit(f"{path}: expected a name YYYY-MM-DD-<n>.json")
        report = json.loads(path.read_text())
        report.setdefault("date", match[1])
        report.setdefault("engine", "embedded")
        report["_run"] = f"{match[1]} #{match[2]}"
        runs.append(((match[1], int(match[2])), report))
    return [report for _, report in sorted(runs, key=lambda pair: pair[0])]


def nice_ceiling(value: float) -> tuple[float, float]:
    """An axis top at or above value and its tick step (1, 2 or 5 × 10^k, 4–8 ticks)."""
    if value <= 0:
        return 1.0, 0.25
    exponent = math.floor(math.log10(value))
    for step_base in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0):
        step = step_base * 10**exponent
        top = math.ceil(value / step) * step
        if top / step <= 8:
            return top, step
    return 10 ** (exponent + 1), 10**exponent


def tick_label(value: float, step: float) -> str:
    if step >= 1000:
        return f"{value / 1000:,.0f}k" if value else "0"
    if step >= 1:
        return f"{value:,.0f}"
    decimals = len(f"{step:g}".partition(".")[2])
    return f"{value:.{decimals}f}"


def panel(svg: list[str], runs: list[dict], top_y: float, title: str,
          series: list[tuple[str, str, bool]], engines: dict[str, str]) -> None:
    """One panel: series are (report field, legend text, dashed) over the runs."""
    values = [run.get(field) for run in runs for field, _, _ in series]
    ceiling, step = nice_ceiling(max([v for v in values if v is not None] or [1]))
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(index: int) -> float:
        return LEFT + (index + 0.5) * plot_width / len(runs)

    def y_of(value: float) -> float:
        return top_y + PANEL_HEIGHT * (1 - value / ceiling)

    svg.append(f'<text x="{LEFT}" y="{top_y - 12}" class="title">{escape(title)}</text>')
    ticks = round(ceiling / step)
    for k in range(ticks + 1):
        value = k * step
        y = y_of(value)
        svg.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   f'class="grid"/>')
        svg.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                   f"{tick_label(value, step)}</text>")
    svg.append(f'<rect x="{LEFT}" y="{top_y}" width="{plot_width}" height="{PANEL_HEIGHT}" '
               f'class="frame"/>')
    for field, legend, dashed in series:
        for engine, colour in engines.items():
            points = [(x_of(i), y_of(run[field])) for i, run in enumerate(runs)
                      if run.get("engine") == engine and run.get(field) is not None]
            if not points:
                continue
            dash = ' stroke-dasharray="5,4"' if dashed else ""
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            svg.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}><title>{escape(legend)} ({engine})</title>'
                       "</polyline>")
            for (x, y), run in zip(points, [r for r in runs if r.get("engine") == engine
                                            and r.get(field) is not None], strict=True):
                tip = f"{run['_run']} {run.get('label') or ''}: {legend} {run[field]:,}"
                fill = "white" if dashed else colour
                svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" '
                           f'stroke="{colour}" stroke-width="1.5"><title>{escape(tip)}'
                           "</title></circle>")


def render(runs: list[dict]) -> str:
    names = sorted({run["engine"] for run in runs})
    extra = iter(FALLBACK_COLOURS)
    engines = {name: COLOURS.get(name) or next(extra) for name in names}
    height = TOP + 2 * PANEL_HEIGHT + GAP + BOTTOM
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        "<style>.title{font-size:14px;font-weight:bold}.tick{font-size:11px;fill:#333}"
        ".grid{stroke:#ddd;stroke-width:1}.frame{fill:none;stroke:#888;stroke-width:1}"
        ".legend{font-size:12px}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    panel(svg, runs, TOP, "polymon pipeline, events/s (dashed: per worker CPU second)",
          [("pipeline_eps", "events/s", False),
           ("pipeline_eps_per_cpu", "events per worker CPU second", True)], engines)
    second = TOP + PANEL_HEIGHT + GAP
    panel(svg, runs, second, "pipeline ÷ raw aiokafka loop of the same run (ratio_to_raw)",
          [("ratio_to_raw", "ratio to raw", False)], engines)
    plot_width = WIDTH - LEFT - RIGHT
    base = second + PANEL_HEIGHT
    for index, run in enumerate(runs):
        x = LEFT + (index + 0.5) * plot_width / len(runs)
        svg.append(f'<text x="{x:.1f}" y="{base + 14}" class="tick" text-anchor="end" '
                   f'transform="rotate(-40 {x:.1f} {base + 14})">{escape(run["_run"])}'
                   f"<title>{escape(run.get('label') or run['date'])}</title></text>")
    legend_y = height - 14
    legend_x = LEFT
    for name, colour in engines.items():
        svg.append(f'<line x1="{legend_x}" y1="{legend_y - 4}" x2="{legend_x + 24}" '
                   f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{legend_x + 30}" y="{legend_y}" class="legend">'
                   f"{escape(name)} broker</text>")
        legend_x += 160
    svg.append(f'<text x="{legend_x}" y="{legend_y}" class="legend">one point per run, '
               f"{len(runs)} runs; hover a point for its figures</text>")
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, default=HISTORY)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    runs = load_history(args.history)
    if not runs:
        raise SystemExit(f"no reports in {args.history}")
    args.out.write_text(render(runs))
    print(f"wrote {args.out} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
