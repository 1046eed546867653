"""The command line: parses, loads a config, calls the library. No logic of its own lives here.

Every command is a function `cmd_<name>(args)`; `build_parser` wires them. A `GenlabError` (a
mistake the user can fix) prints as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from genlab.errors import GenlabError

console = Console(stderr=False, highlight=False)


# --- commands -----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from genlab.config import load_config
    from genlab.train.runner import train

    if args.config and "=" in args.config:  # `genlab train --resume RUN key=value`: no config given
        args.overrides.insert(0, args.config)
        args.config = None
    if args.resume and not args.config:
        from genlab.runs import Run

        cfg = Run.open(args.resume).config()
        if args.overrides:
            from genlab.config import build_config, parse_overrides, _merge

            cfg = build_config(_merge(cfg.to_dict(), parse_overrides(args.overrides)), "run config + overrides")
    else:
        if not args.config:
            raise GenlabError("genlab train needs a CONFIG (a YAML file or a bundled name) or --resume RUN")
        cfg = load_config(args.config, args.overrides)
    run = train(cfg, resume=args.resume)
    console.print(f"[bold green]run finished:[/] {run.path}")


def cmd_sample(args: argparse.Namespace) -> None:
    from genlab.sampling import sample_grid

    out = sample_grid(args.run, n=args.n, out=args.out, seed=args.seed, which=args.checkpoint)
    console.print(f"wrote {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from genlab.evaluate import evaluate_loglik

    if not args.loglik:
        raise GenlabError("nothing to evaluate: pass --loglik")
    evaluate_loglik(args.run, n_images=args.n_images, samples=args.samples, estimators=args.estimator,
                    seed=args.seed, which=args.checkpoint, console=console)


def cmd_data_info(args: argparse.Namespace) -> None:
    from genlab.data.info import dataset_info

    dataset_info(args.name, root=args.root, console=console, preview=args.preview)


def cmd_data_download(args: argparse.Namespace) -> None:
    from genlab.data.info import download

    path = download(args.name, root=args.root)
    console.print(f"downloaded to {path}")


def cmd_demo(args: argparse.Namespace) -> None:
    from genlab.demo import run_demo

    run_demo(args.config, args.overrides, console=console)


# --- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from genlab import __version__

    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and evaluate deep generative "
                                "models of images (VAE, VQ-VAE, DCGAN, LSGAN, BiGAN).")
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a config; key=value pairs override it")
    t.add_argument("config", nargs="?", help="YAML file or bundled config name (e.g. vae-dsprites-quick)")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=2 model.beta=4")
    t.add_argument("--resume", metavar="RUN", help="continue a run directory from its last checkpoint")
    t.add_argument("--devices", help="shortcut for trainer.devices")
    t.add_argument("--num-nodes", type=int, help="shortcut for trainer.num_nodes")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run into a grid PNG")
    s.add_argument("run")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--out", default=None, help="PNG path (default: RUN/samples/sample_grid.png)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", choices=["best", "last"], default="best")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="evaluate a trained run")
    e.add_argument("run")
    e.add_argument("--loglik", action="store_true", help="marginal log-likelihood of held-out images")
    e.add_argument("--estimator", action="append", choices=["is", "appendix-d", "ais", "all"],
                   help="repeatable; default: the run config's eval.estimators")
    e.add_argument("--n-images", type=int, default=None)
    e.add_argument("--samples", type=int, default=None, help="importance samples per image (IS)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("data", help="datasets: info and downloads")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    di = dsub.add_parser("info", help="count, resolutions, labels and a preview grid")
    di.add_argument("name")
    di.add_argument("--root", default=None)
    di.add_argument("--preview", default=None, help="preview grid PNG path")
    di.set_defaults(func=cmd_data_info)
    dd = dsub.add_parser("download", help="fetch a dataset with a checksum check")
    dd.add_argument("name")
    dd.add_argument("--root", default=None)
    dd.set_defaults(func=cmd_data_download)

    m = sub.add_parser("demo", help="the main job: train the study's VAE on dSprites, then evaluate it")
    m.add_argument("--config", default="vae-dsprites-quick")
    m.add_argument("overrides", nargs="*")
    m.set_defaults(func=cmd_demo)
    return p


def _apply_shortcuts(args: argparse.Namespace) -> None:
    if getattr(args, "devices", None) is not None:
        args.overrides.append(f"trainer.devices={args.devices}")
    if getattr(args, "num_nodes", None) is not None:
        args.overrides.append(f"trainer.num_nodes={args.num_nodes}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _apply_shortcuts(args)
    try:
        args.func(args)
    except GenlabError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
