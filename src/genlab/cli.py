"""The command line: parses, loads a config, calls the library. No logic of its own lives here.

Every command is a function `cmd_<name>(args)`; `build_parser` wires them. A `GenlabError` (a
mistake the user can fix) prints as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import NoReturn

from rich.console import Console

from genlab import arg_types as A
from genlab import defaults as D
from genlab.errors import GenlabError, Interrupted
from genlab.io import write_error

# OSErrors a user causes and can fix (not bugs): full disk, read-only mount, no permission
USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)

console = Console(highlight=False, soft_wrap=True)  # soft wrap: printed paths stay copyable


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
            from genlab.config import apply_overrides

            cfg = apply_overrides(cfg, args.overrides, "run config + overrides")
    else:
        if not args.config:
            raise GenlabError("genlab train needs a CONFIG (a YAML file or a bundled name) or --resume RUN")
        cfg = load_config(args.config, args.overrides)
    train(cfg, resume=args.resume)  # prints the header, the epoch lines and the final line (rank 0 only)


def cmd_sample(args: argparse.Namespace) -> None:
    from genlab.sampling import sample_grid

    out = sample_grid(args.run, n=args.n, out=args.out, seed=args.seed, which=args.checkpoint)
    console.print(f"wrote {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from genlab.evaluate import evaluate_loglik

    if not args.loglik and not args.quality:
        raise GenlabError("nothing to evaluate: pass --loglik or --quality")
    if args.quality:
        from genlab.eval.gan_quality import evaluate_gan_quality, format_quality
        from genlab.eval.pixel_scores import evaluate_pixel_scores, format_pixel_scores

        quality = evaluate_gan_quality(args.run, n=args.quality, seed=args.seed, which=args.checkpoint)
        console.print(format_quality(quality))
        pixels = evaluate_pixel_scores(args.run, n=args.quality, seed=args.seed, which=args.checkpoint)
        console.print(format_pixel_scores(pixels))
        console.print(f"wrote {os.path.join(args.run, 'eval', 'quality.json')} and pixel_scores.json")
        if not args.loglik:
            return
    evaluate_loglik(args.run, n_images=args.n_images, samples=args.samples, estimators=args.estimator,
                    seed=args.seed, which=args.checkpoint, console=console, proposal=args.proposal,
                    bdmc=args.bdmc)


def cmd_data_info(args: argparse.Namespace) -> None:
    from genlab.data.info import dataset_info

    dataset_info(args.name, root=args.root, console=console, preview=args.preview)


def cmd_data_download(args: argparse.Namespace) -> None:
    if args.name == "inception":  # the FID weights, ahead of time (e.g. for offline compute nodes)
        from genlab.eval.features import download_inception_weights

        if args.root is not None:
            raise GenlabError("data download inception: --root does not apply; the weights go to the torch hub "
                              "cache (set TORCH_HOME to move it)")
        console.print(f"FID weights: {download_inception_weights()}")
        return
    from genlab.data.info import download

    path = download(args.name, root=args.root)
    console.print(f"downloaded to {path}")


def cmd_traverse(args: argparse.Namespace) -> None:
    from genlab.viz.traverse import traverse_run

    dims = [int(d) for d in args.dims.split(",")] if args.dims else None
    written = traverse_run(args.run, out=args.out, mode=args.mode, rows=args.rows, steps=args.steps,
                           span=args.span, dims=dims, seed=args.seed, n_recon=args.n_recon,
                           which=args.checkpoint)
    for name, path in written.items():
        console.print(f"{name}: {path}")


def cmd_disentangle(args: argparse.Namespace) -> None:
    from genlab.eval.disentanglement import evaluate_run
    from genlab.eval.disentanglement.summary import format_result

    console.print(f"disentanglement metrics of {args.run}: protocol {args.protocol}, {args.seeds} evaluation seeds",
                  style="dim")
    result = evaluate_run(args.run, protocol=args.protocol, n_seeds=args.seeds, data_root=args.data_root,
                          which=args.checkpoint)
    console.print(format_result(result))
    console.print(f"wrote {os.path.join(args.run, 'eval', D.DISENTANGLE_RESULT)} and "
                  f"{os.path.join(args.run, 'eval', D.DISENTANGLE_FIGURES)}/ (MI heatmap, traversals)")


def cmd_report(args: argparse.Namespace) -> None:
    from genlab.viz.report import write_report

    page = write_report(args.runs, out=args.out, embed=args.embed)
    console.print(f"wrote {page}")


def cmd_runs(args: argparse.Namespace) -> None:
    from genlab.runs_list import list_runs, runs_table

    summaries = list_runs(args.dir)
    if not summaries:
        console.print(f"no runs in {args.dir}")
        return
    console.print(runs_table(summaries, title=f"runs in {args.dir}"))
    console.print(f"curves of every run: tensorboard --logdir {args.dir}  (then open http://localhost:6006)")


def _run_config_with(run_dir: str, overrides: list[str]):
    """A run's own config with dotted overrides applied (e.g. model.priors.pixelcnn.epochs=3)."""
    from genlab.config import apply_overrides
    from genlab.runs import Run

    cfg = Run.open(run_dir).config()
    if overrides:
        cfg = apply_overrides(cfg, overrides, "run config + overrides")
    return cfg


def cmd_codes(args: argparse.Namespace) -> None:
    from genlab.eval.codes import load_code_maps, write_code_maps

    path = write_code_maps(args.run, which=args.checkpoint, batch_size=args.batch_size, console=console)
    codes = load_code_maps(args.run)
    console.print(f"wrote {path}: {len(codes.indices)} code maps {codes.grid[0]}x{codes.grid[1]} of "
                  f"K={codes.num_codes} ({', '.join(f'{s}: {int((codes.split == s).sum())}' for s in ('train', 'val'))})")


def cmd_prior(args: argparse.Namespace) -> None:
    from genlab.train.console import quiet_lightning
    from genlab.train.prior_module import train_prior

    cfg = _run_config_with(args.run, args.overrides)
    with quiet_lightning():
        out = train_prior(args.run, args.kind, cfg, resume=args.resume, max_epochs=args.epochs,
                          max_minutes=args.max_minutes)
    console.print(f"[bold green]prior trained:[/] {out}")


def cmd_prior_eval(args: argparse.Namespace) -> None:
    from genlab.eval.priors import evaluate_priors, format_table

    result = evaluate_priors(args.run, kinds=args.kind, n_samples=args.n, seed=args.seed, which=args.checkpoint)
    console.print(format_table(result))
    from genlab.viz.report import write_report

    page = write_report([result["run"]])  # the table and the sample grids belong in the run's report
    console.print(f"wrote {result['run']}/eval/priors.md and priors.json; grids in {result['run']}/samples/; "
                  f"report: {page}")


def cmd_vqvae_sweep(args: argparse.Namespace) -> None:
    from genlab.config import load_config
    from genlab.train.vqvae_sweep import sweep_codes

    cfg = load_config(args.config, args.overrides)
    out = sweep_codes(cfg, codes=args.codes, console=console)
    console.print(f"[bold green]sweep finished:[/] {out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from genlab.demo import run_demo

    run_demo(args.config, args.overrides, console=console)


def cmd_study(args: argparse.Namespace) -> None:
    from genlab.study.report import write_study_report

    out = args.out or f"runs/study-{args.profile}"
    if not args.report_only:
        from genlab.study.pipeline import run_study

        run_study(out, profile=args.profile, data=args.data, skip=args.skip, console=console)
    page = write_study_report(out, args.export) if args.export or args.report_only else None
    if page is not None:
        console.print(f"wrote {page} (and study.json beside it)")


def cmd_fid(args: argparse.Namespace) -> None:
    from genlab.eval.fid import fid_cli, format_result

    result = fid_cli(args.path_a, args.path_b, weights=args.weights, dims=args.dims,
                     batch_size=args.batch_size, device=args.device, fallback=args.fallback)
    print(format_result(result))  # plain print: the last line is `FID:  <value>`, like pytorch-fid


# --- parser -------------------------------------------------------------------------------------
class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it: `(default: 100)`.
    Options whose default is None say in words what happens then ("default: the run config's ...")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text.lower() or default is None or default is False or default == argparse.SUPPRESS:
            return text  # says it already; nothing to show; or --help / --version
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands (created with type(self)) use HelpFormatter too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """A bad option or value is a user's mistake like any other: one line naming it (not the usage
        block), printed by `main`, exit status 2."""
        raise GenlabError(f"{self.prog}: {message} (see {self.prog} --help)")


def checkpoint_flag(parser: argparse.ArgumentParser, default: str) -> None:
    """`--checkpoint best|last`, the same on every command that reads a run's weights."""
    parser.add_argument("--checkpoint", choices=D.CHECKPOINTS, default=default, help=D.CHECKPOINT_HELP)


def _verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's own messages (device "
                        "banners, DDP set-up, its hints and warnings); default: only genlab's lines")


def _offline_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true", help="never download (same as GENLAB_OFFLINE=1): "
                        "without the FID weights file, FID fails (genlab fid) or uses the fallback extractor")


def build_parser() -> argparse.ArgumentParser:
    from genlab import __version__

    p = Parser(prog="genlab", description="Train, sample and evaluate deep generative "
               "models of images (VAE, VQ-VAE, DCGAN, LSGAN, BiGAN).")
    p.add_argument("--version", action="version", version=f"genlab {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(sub)
    return p


# --- one function per command: its arguments and the cmd_ function it calls --------------------
def add_train_command(sub) -> None:
    t = sub.add_parser("train", help="train a model from a config; key=value pairs override it")
    t.add_argument("config", nargs="?", help="YAML file or bundled config name (e.g. vae-dsprites-quick)")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=2 model.beta=4")
    t.add_argument("--resume", metavar="RUN", help="continue a run directory from its last checkpoint "
                   "(default: start a new run in output.runs_dir)")
    t.add_argument("--devices", help="shortcut for trainer.devices: a count, or a list like 0,1 (default: the "
                   "config's trainer.devices, 1)")
    t.add_argument("--num-nodes", type=A.count(A.MAX_NODES), help="shortcut for trainer.num_nodes (default: the config's, 1)")
    _verbose_flag(t)
    _offline_flag(t)
    t.set_defaults(func=cmd_train)


def add_sample_command(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a trained run into a grid PNG")
    s.add_argument("run", help="a run directory (as `genlab train` printed it)")
    s.add_argument("--n", type=A.count(A.MAX_GRID), default=D.SAMPLE["n"],
                   help="images in the grid, 10 per row (default: %(default)s)")
    s.add_argument("--out", type=A.writable_output, default=None, help="PNG path (default: RUN/samples/sample_grid.png)")
    s.add_argument("--seed", type=A.seed, default=D.SAMPLE["seed"], help="noise seed (default: %(default)s)")
    checkpoint_flag(s, D.SAMPLE["which"])
    s.set_defaults(func=cmd_sample)


def add_evaluate_command(sub) -> None:
    e = sub.add_parser("evaluate", help="evaluate a trained run")
    e.add_argument("run", help="a VAE run directory")
    e.add_argument("--loglik", action="store_true", help="marginal log-likelihood of held-out images")
    e.add_argument("--estimator", action="append", choices=[*D.ESTIMATORS, "all"],
                   help="repeatable; default: the run config's eval.estimators")
    e.add_argument("--n-images", type=A.count(A.MAX_IMAGES), default=None, help="held-out images to score "
                   "(default: the run config's eval.n_images)")
    e.add_argument("--samples", type=A.count(A.MAX_IMAGES), default=None, help="importance samples per image (IS) "
                   "(default: the run config's eval.samples)")
    e.add_argument("--proposal", choices=D.IS_PROPOSALS, default=None,
                   help="IS proposal: laplace (mode-centred, the default) or encoder (IWAE)")
    e.add_argument("--bdmc", type=A.count(A.MAX_IMAGES, lo=0), nargs="?", const=3, default=0, metavar="N",
                   help="also bracket log p(x) by BDMC (forward + reverse AIS at the eval.ais settings) on N "
                        "images simulated from the model (N is 3 when given without a number; ~2x the AIS cost per "
                        "image); writes RUN/eval/bdmc.json with the bracket width (default: %(default)s, no BDMC)")
    e.add_argument("--quality", type=A.count(A.MAX_IMAGES, lo=0), nargs="?", const=D.QUALITY["n"], default=0,
                   metavar="N", help="sample quality on N real images never trained on (the data.holdout split, else "
                        "validation) and N samples: FD, KID, precision and recall (k=3), and pixel diversity and "
                        "coverage at 32x32 (no pretrained network); writes RUN/eval/quality.json and "
                        f"RUN/eval/pixel_scores.json (N is {D.QUALITY['n']} when given without a number)")
    e.add_argument("--seed", type=A.seed, default=D.LOGLIK["seed"], help="seed of the image choice and the samplers")
    checkpoint_flag(e, D.LOGLIK["which"])
    _offline_flag(e)
    e.set_defaults(func=cmd_evaluate)


def add_data_command(sub) -> None:
    d = sub.add_parser("data", help="datasets: info and downloads")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    di = dsub.add_parser("info", help="count, resolutions, labels and a preview grid")
    di.add_argument("name", help="dataset: dsprites, celeba, tinyimagenet, bitmoji or folder")
    di.add_argument("--root", default=None, help="dataset folder (default: ./data/NAME; dSprites: rendered "
                    "in memory unless a folder with the official npz is given)")
    di.add_argument("--preview", type=A.writable_output, default=None, help="also write a preview grid PNG here (default: none)")
    di.set_defaults(func=cmd_data_info)
    dd = dsub.add_parser("download", help="fetch a dataset (or the FID Inception weights) with a checksum check")
    dd.add_argument("name", help="dataset: dsprites, celeba, tinyimagenet or bitmoji; or inception: the FID "
                    "weights into the torch hub cache ($GENLAB_FID_WEIGHTS_URL: a mirror, "
                    "$GENLAB_FID_WEIGHTS_SHA256: its file's hash)")
    dd.add_argument("--root", default=None, help="where to put it (default: ./data/NAME; dSprites: the "
                    "genlab cache folder)")
    dd.set_defaults(func=cmd_data_download)


def add_traverse_command(sub) -> None:
    tr = sub.add_parser("traverse", help="latent traversals, slerp interpolations and (BiGAN) reconstructions "
                        "of a trained run, into RUN/plots/traverse/")
    tr.add_argument("run", help="a run directory of a model with a latent space (VAE, GAN, BiGAN)")
    tr.add_argument("--mode", default=D.TRAVERSE["mode"], choices=D.TRAVERSE_MODES,
                    help="which grids (default: %(default)s)")
    tr.add_argument("--rows", type=A.count(A.MAX_GRID), default=D.TRAVERSE["rows"],
                    help="directions (or slerp pairs), one per row (default: %(default)s)")
    tr.add_argument("--steps", type=A.count(A.MAX_GRID, lo=2), default=D.TRAVERSE["steps"],
                    help="images per row (default: %(default)s)")
    tr.add_argument("--span", type=A.FloatRange(0, 1000), default=D.TRAVERSE["span"],
                    help="traverse each direction over [-span, span] (default: %(default)s)")
    tr.add_argument("--dims", default=None, help="latent coordinates for --mode coords, e.g. 0,5,17 (default 0..rows-1)")
    tr.add_argument("--n-recon", type=A.count(A.MAX_IMAGES), default=D.TRAVERSE["n_recon"],
                    help="real images for the reconstruction error (default: %(default)s)")
    tr.add_argument("--seed", type=A.seed, default=D.TRAVERSE["seed"], help="noise seed (default: %(default)s)")
    tr.add_argument("--out", type=A.writable_output, default=None, help="output folder (default: RUN/plots/traverse)")
    checkpoint_flag(tr, D.TRAVERSE["which"])
    tr.set_defaults(func=cmd_traverse)



def add_disentangle_command(sub) -> None:
    dg = sub.add_parser("disentangle", help="dSprites disentanglement metrics of a run's mean code (BetaVAE, "
                        "FactorVAE, MIG, SAP, DCI, modularity, explicitness) into RUN/eval/disentanglement.json, "
                        "with an MI heatmap and labelled traversals")
    dg.add_argument("run", help="a run directory of a dSprites model with an encoder (VAE family)")
    dg.add_argument("--protocol", choices=D.DISENTANGLE_PROTOCOLS, default=D.DISENTANGLE["protocol"],
                    help="dlib: disentanglement_lib's point counts and classifiers (slow on a CPU); cpu: fewer "
                    "points and fewer boosted trees (default: %(default)s)")
    dg.add_argument("--seeds", type=A.count(A.MAX_EVAL_SEEDS), default=D.DISENTANGLE["seeds"],
                    help="evaluation seeds; each metric is reported as the median [min, max] over them "
                    "(default: %(default)s)")
    dg.add_argument("--data-root", default=None, help="the official dSprites npz (or its folder); default: "
                    "render the images with genlab's renderer")
    checkpoint_flag(dg, D.DISENTANGLE["which"])
    dg.set_defaults(func=cmd_disentangle)


def add_report_command(sub) -> None:
    r = sub.add_parser("report", help="an HTML report of a run, or of several runs side by side")
    r.add_argument("runs", nargs="+", metavar="RUN", help="one run directory, or several to compare")
    r.add_argument("--out", type=A.writable_output, default=None,
                   help="folder or .html path (default: RUN/report.html for one run, "
                   "a new compare-<time>/ folder beside the first run for several)")
    r.add_argument("--embed", action="store_true", help="embed the images: one file, no folder beside it")
    r.set_defaults(func=cmd_report)


def add_runs_command(sub) -> None:
    ls = sub.add_parser("runs", help="list the runs in a folder: model, dataset, epochs, status, headline metric")
    ls.add_argument("dir", nargs="?", default="runs", help="runs folder (default: runs)")
    ls.set_defaults(func=cmd_runs)


def add_codes_command(sub) -> None:
    cm = sub.add_parser("codes", help="VQ-VAE: write the code-map dataset (uint16 indices + image ids) "
                        "of a run into RUN/codes/codes.npz")
    cm.add_argument("run", help="a VQ-VAE run directory")
    cm.add_argument("--batch-size", type=A.count(A.MAX_BATCH), default=D.CODES["batch_size"],
                    help="images per encoder batch (default: %(default)s)")
    checkpoint_flag(cm, D.CODES["which"])
    cm.set_defaults(func=cmd_codes)


def add_prior_command(sub) -> None:
    pr = sub.add_parser("prior", help="VQ-VAE: train a prior over the run's code maps into RUN/priors/KIND/")
    pr.add_argument("run", help="a VQ-VAE run directory with its code maps (`genlab codes RUN`)")
    pr.add_argument("overrides", nargs="*", help="dotted overrides, given before the options, e.g. "
                    "genlab prior RUN model.priors.pixelcnn.layers=12 --kind pixelcnn")
    pr.add_argument("--kind", required=True, choices=D.PRIOR_KINDS, help="which prior to train (required)")
    pr.add_argument("--epochs", type=A.count(A.MAX_EPOCHS), default=None, help="shortcut for model.priors.KIND.epochs "
                    "(default: the run config's)")
    pr.add_argument("--max-minutes", type=A.FloatRange(0, 60 * 24 * 365), default=None,
                    help="neural priors: stop training after this much wall time (the best epoch is kept; "
                         "default: no time limit)")
    pr.add_argument("--resume", action="store_true", help="continue from RUN/priors/KIND/last.ckpt")
    _verbose_flag(pr)
    pr.set_defaults(func=cmd_prior)


def add_prior_eval_command(sub) -> None:
    pe = sub.add_parser("prior-eval", help="VQ-VAE: sample grids, held-out bits per code map and FD/KID "
                        "for each trained prior; one table in RUN/eval/priors.md")
    pe.add_argument("run", help="a VQ-VAE run directory with trained priors")
    pe.add_argument("--kind", action="append", choices=D.PRIOR_KINDS,
                    help="repeatable; default: every trained prior")
    pe.add_argument("--n", type=A.count(A.MAX_IMAGES, lo=3), default=None, help="samples (and real images) for FD/KID; "
                    "default model.priors.eval_samples")
    pe.add_argument("--seed", type=A.seed, default=D.PRIOR_EVAL["seed"], help="sampling seed (default: %(default)s)")
    checkpoint_flag(pe, D.PRIOR_EVAL["which"])
    _offline_flag(pe)
    pe.set_defaults(func=cmd_prior_eval)


def add_vqvae_sweep_command(sub) -> None:
    sw = sub.add_parser("vqvae-sweep", help="train one VQ-VAE per codebook size and write a side-by-side "
                        "comparison (grid per K; PSNR, usage, compression)")
    sw.add_argument("config", help="YAML file or bundled config name (e.g. vqvae-tinyimagenet-sweep)")
    sw.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=2")
    sw.add_argument("--codes", type=A.count(A.MAX_CODES, lo=2), nargs="+", default=None,
                    help="codebook sizes (default: model.sweep_codes)")
    _verbose_flag(sw)
    sw.set_defaults(func=cmd_vqvae_sweep)


def add_demo_command(sub) -> None:
    m = sub.add_parser("demo", help="the main job: train the study's VAE on dSprites, then evaluate it")
    m.add_argument("--config", default="vae-dsprites-quick", help="YAML file or bundled config name")
    m.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=1")
    _verbose_flag(m)
    m.set_defaults(func=cmd_demo)


def add_study_command(sub) -> None:
    st = sub.add_parser("study", help="run every experiment of the reference study (and genlab's recipes "
                        "beside it) as one resumable pipeline, then write study.html and study.json")
    st.add_argument("--profile", default="cpu", help="cpu (a 2-core CPU, within 90 min), full (the study's settings, "
                    "for a GPU), tiny (seconds; for tests), disentangle (VAE, beta-VAE, beta-TCVAE and FactorVAE "
                    "on dSprites, 3 seeds each, scored by genlab disentangle beside published ranges; ~5 h on a "
                    "2-core CPU), disentangle-tiny, or a YAML file shaped like them (default: %(default)s)")
    st.add_argument("--out", type=A.writable_output, default=None,
                    help="the study folder; rerun the same command to continue it "
                    "(default: runs/study-PROFILE)")
    st.add_argument("--data", nargs="+", metavar="NAME=PATH", default=None,
                    help="dataset folders, e.g. celeba=PATH bitmoji=PATH tinyimagenet=PATH (dSprites is built in; "
                         "default: each config's data.root)")
    st.add_argument("--skip", nargs="+", metavar="STAGE_OR_DATASET", default=None,
                    help="leave out stages, by name (e.g. bigan), by dataset (e.g. celeba) or, in the "
                         "disentangle study, by model (e.g. factorvae); the report says so (default: none)")
    st.add_argument("--export", metavar="DIR", type=A.writable_output, default=None,
                    help="also write study.html/json into DIR with "
                    "the pictures copied beside it, e.g. docs/study (default: only in the study folder)")
    st.add_argument("--report-only", action="store_true", help="rewrite the report from the runs, train nothing")
    _verbose_flag(st)
    _offline_flag(st)
    st.set_defaults(func=cmd_study)


def add_fid_command(sub) -> None:
    f = sub.add_parser("fid", help="FID (and KID) between two image folders or .npz statistics files; "
                       "a drop-in for `python -m pytorch_fid A B`")
    f.add_argument("path_a", help="folder of images or .npz statistics (mu, sigma)")
    f.add_argument("path_b", help="folder of images or .npz statistics (mu, sigma)")
    f.add_argument("--weights", default=None, help="pt_inception-2015-12-05-6726825d.pth (default: "
                   "$GENLAB_FID_WEIGHTS, then the torch hub cache, downloaded there on first use)")
    f.add_argument("--dims", type=A.IntRange(min(D.FID_DIMS), max(D.FID_DIMS)), default=D.FID["dims"], choices=D.FID_DIMS,
                   help="Inception feature block (default: %(default)s, the standard FID)")
    f.add_argument("--batch-size", type=A.count(A.MAX_BATCH), default=D.FID["batch_size"],
                   help="images per batch (default: %(default)s)")
    f.add_argument("--device", default=None, help="cuda, cuda:0 or cpu (default: cuda if available)")
    f.add_argument("--fallback", action="store_true", help="no weights file: seeded random network calibrated "
                   "on PATH_A; values NOT comparable to published FIDs")
    _offline_flag(f)
    f.set_defaults(func=cmd_fid)


# the sub-commands, in the order `genlab --help` lists them
COMMANDS = (
    add_train_command, add_sample_command, add_evaluate_command, add_data_command, add_traverse_command,
    add_disentangle_command, add_report_command, add_runs_command, add_codes_command, add_prior_command,
    add_prior_eval_command, add_vqvae_sweep_command, add_demo_command, add_study_command, add_fid_command,
)


def _apply_shortcuts(args: argparse.Namespace) -> None:
    if getattr(args, "devices", None) is not None:
        args.overrides.append(f"trainer.devices={args.devices}")
    if getattr(args, "num_nodes", None) is not None:
        args.overrides.append(f"trainer.num_nodes={args.num_nodes}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except GenlabError as exc:  # a bad option or value (Parser.error)
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return 2
    _apply_shortcuts(args)
    if getattr(args, "verbose", False):
        from genlab.progress import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    if getattr(args, "offline", False):  # an environment variable, so DDP workers and study stages see it too
        from genlab.eval.fid_weights import OFFLINE_ENV

        os.environ[OFFLINE_ENV] = "1"
    previous = _sigterm_as_ctrl_c()
    try:
        args.func(args)
    except Interrupted as exc:
        console.print(f"[bold red]interrupted:[/] {exc}", soft_wrap=True)
        return 130
    except GenlabError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return 2
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise  # anything else is a bug and keeps its traceback
        # a full disk or a read-only / forbidden folder is the user's to fix: one line naming the file
        console.print(f"[bold red]error:[/] {write_error(exc.filename or '?', exc)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/] (Ctrl-C or SIGTERM); what was finished is saved", soft_wrap=True)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _sigterm_as_ctrl_c():
    """`kill <pid>` stops any command like Ctrl-C does (atomic writes keep every file whole), instead
    of killing it mid-step; during `trainer.fit` the runner hands SIGTERM to Lightning's own handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    sys.exit(main())
