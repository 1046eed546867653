"""Wall and CPU time of every stage (and step) of a `genlab study` folder, as a markdown table.

    .venv/bin/python benchmarks/study_stage_times.py runs/study-cpu [--threads 2]

Wall time depends on what else the machine ran; CPU-seconds much less so. On a quiet machine with
T cores a stage takes about CPU-seconds / T of wall time when its work keeps all T threads busy
(training and Inception forwards do; data loading and file writes do not), so the quiet estimate
below is a lower bound: it is the column to compare with the profile's 90-minute target only
together with the wall column of a run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(folder: Path, threads: int) -> str:
    state = json.loads((folder / "state.json").read_text())
    lines = [f"Study folder `{folder}`, profile `{state['profile']}`; quiet estimate = CPU-seconds / {threads}.", "",
             "| stage | status | wall min | CPU min | quiet estimate min | steps (wall s / CPU s) |",
             "|---|---|---|---|---|---|"]
    total_wall = total_cpu = 0.0
    for name, entry in state["stages"].items():
        steps = entry.get("steps", {})
        wall = sum(s["seconds"] for s in steps.values())
        cpu = sum(s.get("cpu_seconds", 0) for s in steps.values())
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        detail = ", ".join(f"{k} {v['seconds']:.0f}/{v.get('cpu_seconds', 0):.0f}" for k, v in steps.items())
        lines.append(f"| {name} | {entry.get('status')} | {wall / 60:.1f} | {cpu / 60:.1f} | {cpu / threads / 60:.1f} | "
                     f"{detail or '–'} |")
    lines.append(f"| **all** | | **{total_wall / 60:.1f}** | **{total_cpu / 60:.1f}** | **{total_cpu / threads / 60:.1f}** | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--threads", type=int, default=2, help="cores of the quiet machine (default: %(default)s)")
    args = p.parse_args()
    print(table(args.folder, args.threads))


if __name__ == "__main__":
    main()
