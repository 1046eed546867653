"""Log-likelihoods a user can trust: every estimator at its defaults against a long reference, on
trained dSprites VAEs (issue 11).

For each run directory given: the same held-out images `genlab evaluate --loglik` scores (the run's
validation split, seed 0), then
  * the default table (`loglik_table` with the run config's estimators and the library defaults),
    timed in CPU seconds: the cost target is <= 5 CPU-minutes for 10 images of the demo model;
  * each estimator at its defaults (IS with the mode-centred proposal, IS with the encoder proposal,
    AIS, Appendix D; AIS and Appendix D on the first --slow-images images only: they cost ~minutes
    per image on 2 CPU cores);
  * a long reference: the mode-centred IS at --ref-samples with a *different* seed and a wider
    defensive mixture, cross-checked against long AIS (--ref-ais-temps temperatures) on the
    first --ref-ais-images images.
Reports error = estimate - reference (nats), ESS, the converged flag and CPU seconds per image, and
checks the two targets: the best value within 1 nat of the reference on every image, and every value
more than 2 nats off flagged as not converged.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/likelihood_bench.py RUN_DIR [RUN_DIR ...] \
        [--images 10] [--slow-images 2] [--ref-samples 5000] [--ref-ais-images 1] [--no-write]

Appends its tables to benchmarks/RESULTS.md under "## Log-likelihoods a user can trust".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genlab.eval.ais import ais
from genlab.eval.appendix_d import appendix_d
from genlab.eval.importance import importance_sampling
from genlab.eval.likelihood import loglik_table
from genlab.evaluate import pick_images
from genlab.io import atomic_write_text
from genlab.runs import Run

SECTION = "## Log-likelihoods a user can trust"


def cpu_timed(fn):
    cpu = time.process_time()
    out = fn()
    return out, time.process_time() - cpu


def bench_run(run_dir: str, args) -> tuple[str, dict]:
    run = Run.open(run_dir)
    cfg = run.config()
    model = run.load_model("best", "cpu").eval()
    x, ids = pick_images(run, args.images, 0)
    slow = slice(0, args.slow_images)
    print(f"{run_dir}: images {ids}", flush=True)

    # 1. the default table, as `genlab evaluate RUN --loglik` builds it
    table, t_table = cpu_timed(lambda: loglik_table(model, x, ids, estimators=tuple(cfg.eval.estimators),
                                                    samples=cfg.eval.samples, seed=0))
    rows = table.rows()
    print(f"default table: {t_table:.0f} CPU s", flush=True)

    # 2. the long reference: mode-centred IS, other seed, wider defensive mixture
    ref, t_ref = cpu_timed(lambda: importance_sampling(model, x, args.ref_samples, seed=12345, image_ids=ids,
                                                       defensive=0.3, inflation=1.5))
    print(f"reference IS K={args.ref_samples}: {t_ref:.0f} CPU s; converged {ref.converged.tolist()}", flush=True)
    ref_ais = None
    if args.ref_ais_images:
        sl = slice(0, args.ref_ais_images)
        ref_ais, t_ref_ais = cpu_timed(lambda: ais(model, x[sl], n_chains=args.ref_ais_chains,
                                                   n_intermediate=args.ref_ais_temps,
                                                   image_ids=ids[sl], seed=777, check=False))
        print(f"reference AIS {args.ref_ais_temps} temps: {t_ref_ais:.0f} CPU s, {ref_ais.log_px} vs IS "
              f"{ref.log_px[sl]}", flush=True)

    # 3. each estimator at its defaults
    runs = {
        # the default table's own IS estimate (same seed and images as a direct call would draw)
        f"IS, mode-centred (default), K={cfg.eval.samples}": ((lambda: table.estimates["is"]), None),
        "IS, encoder proposal, K=1000": (lambda: importance_sampling(model, x, 1000, proposal="encoder",
                                                                    image_ids=ids), None),
    }
    if args.slow_images:
        runs["AIS, defaults"] = (lambda: ais(model, x[slow], image_ids=ids[slow]), slow)
        runs["Appendix D, defaults (diagnostic)"] = (lambda: appendix_d(model, x[slow], image_ids=ids[slow]), slow)
    lines = ["| image | estimator | estimate (nats) | reference | error | ESS | converged | CPU s/image |",
             "|---|---|---|---|---|---|---|---|"]
    flags_ok, per_est = True, {}
    for name, (fn, _) in runs.items():
        est, t = cpu_timed(fn)
        if name.startswith("IS, mode-centred"):
            t = t_table  # its cost is the table's
        n = len(est.log_px)
        per_est[name] = est
        for i in range(n):
            err = est.log_px[i] - ref.log_px[i]
            bad = abs(err) > 2 and bool(est.converged[i])
            flags_ok &= not bad
            lines.append(f"| {ids[i]} | {name} | {est.log_px[i]:.2f} ± {est.se[i]:.2f} | {ref.log_px[i]:.2f} | "
                         f"{err:+.2f}{' **UNFLAGGED**' if bad else ''} | {est.ess[i]:.1f} | "
                         f"{'yes' if est.converged[i] else 'no'} | {t / n:.1f} |")
        print(f"{name}: {t:.0f} CPU s", flush=True)
    best_err = []
    for i, row in enumerate(rows):
        best = row["best"]
        best_err.append(np.nan if best is None else best["log_px"] - ref.log_px[i])
    best_err = np.asarray(best_err)
    within = bool(np.all(np.abs(best_err) <= 1.0))
    summary = {"run": run_dir, "ids": ids, "table_cpu_s": t_table, "best_err": best_err.tolist(),
               "best_within_1_nat": within, "flags_ok": flags_ok,
               "ref": ref.log_px.tolist(), "ref_se": ref.se.tolist(), "ref_ess": ref.ess.tolist(),
               "ref_ais": None if ref_ais is None else ref_ais.log_px.tolist(),
               "elbo": table.elbo.tolist()}
    text = [f"### {run_dir} ({cfg.name}; {len(ids)} validation images {ids})", "",
            f"Reference: mode-centred IS, K = {args.ref_samples}, seed 12345, defensive 0.3, inflation 1.5 "
            f"(ESS {np.min(ref.ess):.0f}-{np.max(ref.ess):.0f}, replicate se <= {np.max(ref.se):.2f} nat, "
            f"converged on {int(ref.converged.sum())}/{len(ids)})."]
    if ref_ais is not None:
        diffs = ref_ais.log_px - ref.log_px[: len(ref_ais.log_px)]
        text.append(f"Cross-check: AIS, {args.ref_ais_chains} chains x {args.ref_ais_temps} temperatures "
                    f"(encoder init) on image(s) "
                    f"{ids[: len(diffs)]}: {', '.join(f'{v:.2f}' for v in ref_ais.log_px)} nats, i.e. "
                    f"{', '.join(f'{d:+.2f}' for d in diffs)} from the reference IS.")
    text += ["", f"Default table (`genlab evaluate RUN --loglik`: estimators {list(cfg.eval.estimators)}, "
             f"K = {cfg.eval.samples}): **{t_table:.0f} CPU s for {len(ids)} images** "
             f"({t_table / 60:.1f} CPU-minutes).", "",
             "| image | ELBO | best (estimator) | reference | best - reference |", "|---|---|---|---|---|"]
    for i, row in enumerate(rows):
        b = row["best"]
        best_text = "none converged" if b is None else f"{b['log_px']:.2f} ({b['estimator']})"
        text.append(f"| {ids[i]} | {row['elbo']:.2f} | {best_text} | "
                    f"{ref.log_px[i]:.2f} ± {ref.se[i]:.2f} | {best_err[i]:+.2f} |")
    text += ["", f"Best within 1 nat of the reference on every image: **{'yes' if within else 'no'}** "
             f"(max |error| {np.nanmax(np.abs(best_err)):.2f} nats). Every value more than 2 nats off flagged "
             f"not converged: **{'yes' if flags_ok else 'no'}**.", "", "Each estimator at its defaults:", "",
             *lines]
    return "\n".join(text), summary


def append_section(text: str, path: Path) -> None:
    """Replace our own section (if any) and keep everyone else's."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    head, sep, rest = old.partition(SECTION)
    if sep:
        nxt = rest.find("\n## ")
        rest = rest[nxt + 1:] if nxt >= 0 else ""
        old = head.rstrip() + "\n\n" + rest
    atomic_write_text(path, old.rstrip() + "\n\n" + text.rstrip() + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="trained VAE run directories")
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--slow-images", type=int, default=2, help="images for AIS and Appendix D at defaults")
    p.add_argument("--ref-samples", type=int, default=5000)
    p.add_argument("--ref-ais-images", type=int, default=1)
    p.add_argument("--ref-ais-temps", type=int, default=2000)
    p.add_argument("--ref-ais-chains", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the summaries here")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/likelihood_bench.py " + " ".join(sys.argv[1:])
    print(command, flush=True)
    parts, summaries = [], []
    for run_dir in args.runs:
        text, summary = bench_run(run_dir, args)
        print(text, flush=True)
        parts.append(text)
        summaries.append(summary)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = (f"{SECTION}\n\nCommand: `{command.strip()}`  \n1 thread, CPU seconds (process time; the machine "
            f"was shared, load average {load:.1f} at the end).\n\n" + "\n\n".join(parts))
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=1))
    if not args.no_write:
        append_section(text, Path(__file__).resolve().parent / "RESULTS.md")


if __name__ == "__main__":
    main()
