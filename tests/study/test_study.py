"""`genlab study` on the tiny profile: every stage and step runs on small generated datasets, the
report reads its numbers from the runs, a rerun skips what is done, an interrupted stage resumes,
and a missing dataset or a typo fails before anything trains."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import yaml
from tests.study.fake_data import make_datasets

from genlab.errors import GenlabError, Interrupted
from genlab.study import pipeline
from genlab.study.plan import STAGE_NAMES, STAGES, load_profile, parse_data_roots, profile_names, skipped_stages
from genlab.study.report import collect_study, write_study_report

ONLY_K128 = ["celeba", "dsprites", "bitmoji", "vqvae-K256", "vqvae-K512"]  # the quickest stage alone


# the first test here sets up `tiny_study`: all 11 stages, a few minutes on 2 cores (pyproject's
# per-test timeout counts set-up too), so this module gets a longer limit
pytestmark = pytest.mark.timeout(1500)


def data_args(roots: dict[str, Path]) -> list[str]:
    return [f"{name}={path}" for name, path in roots.items()]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    return make_datasets(tmp_path_factory.mktemp("study-data"))


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, datasets):
    """The whole tiny study, run once for the tests of this module."""
    folder = tmp_path_factory.mktemp("study") / "tiny"
    mp = pytest.MonkeyPatch()
    mp.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("study-cache")))
    try:
        outcome = pipeline.run_study(folder, profile="tiny", data=data_args(datasets))
    finally:
        mp.undo()
    return folder, outcome


def test_every_stage_and_step_runs_and_the_report_is_written(tiny_study):
    folder, outcome = tiny_study
    assert outcome == {name: "done" for name in STAGE_NAMES}
    state = json.loads((folder / "state.json").read_text())
    for stage in STAGES:
        entry = state["stages"][stage.name]
        assert entry["status"] == "done", (stage.name, entry)
        expected = ["compare"] if stage.kind == "compare" else ["train", *stage.steps, "report"]
        assert list(entry["steps"]) == expected
    assert (folder / "vae-celeba" / "samples" / "final_10x10.png").is_file()
    # genlab's dSprites recipe samples from an aggregate-posterior prior too; the study's settings do not
    assert (folder / "vae-dsprites-recipe" / "samples" / pipeline.AGGREGATE_GRID).is_file()
    assert not (folder / "vae-dsprites" / "samples" / pipeline.AGGREGATE_GRID).exists()
    assert (folder / "vae-dsprites-recipe" / "eval" / "sprite_matches.png").is_file()
    assert (folder / "vqvae-K512" / "eval" / "priors.json").is_file()
    assert (folder / "vqvae-compare" / "comparison.png").is_file()
    assert (folder / "bigan" / "eval" / "reconstruction.json").is_file()
    study = json.loads((folder / "study.json").read_text())
    kinds = {(r["stage"], r["metric"].split(",")[0]) for r in study["comparisons"]}
    for gan in ("dcgan", "lsgan", "bigan", "dcgan-recipe"):
        assert (gan, "FD") in kinds  # fallback features: named FD, not FID
    for vae in ("vae-celeba", "vae-dsprites", "vae-dsprites-recipe"):
        assert (vae, "log p(x)") in kinds
    assert {r["stage"] for r in study["gan_held_out"]} == {"dcgan", "lsgan", "bigan", "dcgan-recipe"}
    assert {r["stage"] for r in study["sprites"]} == {"vae-dsprites", "vae-dsprites-recipe"}
    assert [r["K"] for r in study["vqvae"]["rows"]] == [8, 16, 32]
    assert study["priors"]["num_codes"] == 32
    # the study's numbers stand beside genlab's, and nothing at this scale claims to be comparable
    fid = next(r for r in study["comparisons"] if r["stage"] == "dcgan")
    assert fid["study"] == 131.7 and fid["comparable"] is False and "fallback" in fid["why_not"]
    html = (folder / "study.html").read_text()
    assert "131.70" in html and "vqvae-compare/comparison.png" in html


def test_the_report_reads_its_numbers_from_the_runs(tiny_study, tmp_path):
    folder, _ = tiny_study
    fid_file = folder / "dcgan" / "eval" / "fid.json"
    original = fid_file.read_text()
    try:
        fid = json.loads(original)
        fid["best"]["fid"] = 4321.5
        fid_file.write_text(json.dumps(fid))
        page = write_study_report(folder, tmp_path / "docs")  # an export folder: pictures copied beside it
        row = next(r for r in collect_study(folder)["comparisons"] if r["stage"] == "dcgan")
        assert row["genlab"] == 4321.5
        assert "4321.50" in page.read_text()
        assert "| dcgan | study | FD, fallback features (best epoch) | 131.70 | 4321.50 |" in (
            tmp_path / "docs" / "study.md").read_text()
        assert json.loads((tmp_path / "docs" / "study.json").read_text())["comparisons"][0]["source"]
        copied = list((tmp_path / "docs" / "pictures").rglob("*.png"))
        assert any(p.name == "vqvae-compare_comparison.png" for p in copied)
        assert "pictures/vqvae-compare/vqvae-compare_comparison.png" in page.read_text()
    finally:
        fid_file.write_text(original)


def test_the_report_shows_pixel_scores_and_the_dcgan_curve_beside_the_study(tiny_study, tmp_path):
    folder, _ = tiny_study
    study = collect_study(folder)
    for row in study["gan_held_out"]:  # every GAN stage's quality step wrote the pixel scores too
        pixels = json.loads((folder / row["stage"] / "eval" / "pixel_scores.json").read_text())
        assert (row["diversity"], row["coverage"]) == (pixels["diversity"], pixels["coverage"])
        assert row["real_coverage"] == pixels["real_coverage"] and "pixel_scores.json" in row["source"]
    fid_file = folder / "dcgan" / "eval" / "fid.json"
    original = fid_file.read_text()
    try:  # a 10-epoch history, as the cpu profile scores it
        fid = json.loads(original)
        fid["history"] = [{**fid["history"][0], "epoch": e, "fid": 300.0 - 10 * e + (e == 6) * 50} for e in range(10)]
        fid_file.write_text(json.dumps(fid))
        page = write_study_report(folder, tmp_path / "docs")
        curve = json.loads((tmp_path / "docs" / "study.json").read_text())["dcgan_fid_curve"]
        assert curve["epochs"] == list(range(1, 11)) and curve["best_epoch"] == 10 and curve["best_fid"] == 210.0
        assert (curve["study_best_epoch"], curve["study_best_fid"]) == (5, 131.7)
        assert (tmp_path / "docs" / curve["plot"]).is_file()
        md = (tmp_path / "docs" / "study.md").read_text()
        assert "7: 290.0" in md and "best epoch 10. The study: best after epoch 5 of 10 (FID 131.7)" in md
        assert "pixel diversity (real)" in md and curve["plot"] in page.read_text()
    finally:
        fid_file.write_text(original)


def test_a_rerun_skips_finished_stages(tiny_study, datasets, monkeypatch):
    folder, _ = tiny_study

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr("genlab.train.runner.train", no_training)
    for name in pipeline.STEPS:
        monkeypatch.setitem(pipeline.STEPS, name, no_training)
    outcome = pipeline.run_study(folder, profile="tiny", data=data_args(datasets))
    assert set(outcome.values()) == {"finished"}


class SigtermAtFirstEpochEnd(L.Callback):
    """What `kill <pid>` does during training; only the first time (the resumed run finishes)."""

    fired = False

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not SigtermAtFirstEpochEnd.fired:
            SigtermAtFirstEpochEnd.fired = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_an_interrupted_stage_resumes_and_skips_are_reported(tmp_path, datasets, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "study"
    args = dict(profile="tiny", data=data_args(datasets), skip=ONLY_K128)
    with pytest.raises(Interrupted, match="vqvae-K128.*same command"):
        pipeline.run_study(folder, extra_callbacks=[SigtermAtFirstEpochEnd()], **args)
    state = json.loads((folder / "state.json").read_text())
    assert state["stages"]["vqvae-K128"]["status"] == "interrupted"
    assert (folder / "vqvae-K128" / "checkpoints" / "last.ckpt").is_file()
    outcome = pipeline.run_study(folder, **args)
    assert outcome["vqvae-K128"] == "resumed"
    assert outcome["dcgan"] == "skipped" and outcome["vqvae-compare"] == "skipped"
    study = collect_study(folder)
    statuses = {s["name"]: (s["status"], s["message"]) for s in study["stages"]}
    assert statuses["vqvae-K128"][0] == "done"
    assert statuses["vae-celeba"] == ("skipped", "--skip celeba")
    assert statuses["vqvae-compare"][0] == "skipped"
    assert "--skip celeba" in (folder / "study.html").read_text()


def test_a_missing_dataset_fails_before_anything_trains(tmp_path, datasets, monkeypatch):
    monkeypatch.setattr("genlab.train.runner.train", lambda *a, **k: pytest.fail("trained"))
    roots = {**datasets, "bitmoji": tmp_path / "nowhere"}
    with pytest.raises(GenlabError, match=r"bitmoji.*--data bitmoji=PATH.*--skip bitmoji"):
        pipeline.run_study(tmp_path / "study", profile="tiny", data=data_args(roots))
    assert not (tmp_path / "study").exists()


def test_typos_fail_with_one_line(tmp_path):
    with pytest.raises(GenlabError, match="unknown study profile 'cpux'"):
        load_profile("cpux")
    with pytest.raises(GenlabError, match="unknown dataset"):
        parse_data_roots(["celebA=/x"])
    with pytest.raises(GenlabError, match="give NAME=PATH"):
        parse_data_roots(["celeba"])
    with pytest.raises(GenlabError, match="not a stage or a dataset"):
        skipped_stages(["dcgann"])
    partial = tmp_path / "partial.yaml"
    partial.write_text("profile: mine\nstages:\n  dcgan: {config: dcgan-bitmoji}\n")
    with pytest.raises(GenlabError, match="missing stage.*vae-celeba"):
        load_profile(partial)
    profile = yaml.safe_load(Path(load_profile("tiny").source).read_text())
    profile["stages"]["dcgan"]["minutez"] = 3
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(profile))
    with pytest.raises(GenlabError, match="stage dcgan: unknown key.*minutez"):
        load_profile(typo)


def test_every_bundled_profile_builds_every_stage_config(tmp_path):
    """A typo in a profile's overrides (or a config renamed under it) fails here, not an hour in."""
    assert {"cpu", "full", "tiny", "disentangle", "disentangle-tiny"} <= set(profile_names())
    for name in profile_names():
        profile = load_profile(name)
        for stage in profile.stage_list():
            if stage.kind != "train":
                continue
            cfg = pipeline.stage_config(stage, profile, {"bitmoji": str(tmp_path)}, tmp_path)
            assert cfg.output.run_name == stage.name
            if stage.dataset == "bitmoji":
                assert cfg.data.root == str(tmp_path.resolve())
    cpu = load_profile("cpu")
    cfg = pipeline.stage_config(STAGES[0], cpu, {}, tmp_path)
    assert cfg.data.subset == 2000 and cfg.trainer.max_epochs == 3
    full = load_profile("full")
    assert all(not full.settings(s).overrides or s.startswith(("vqvae", "vae-dsprites-recipe", "dcgan-recipe"))
               for s in STAGE_NAMES)  # the study's settings: only K and the recipes differ
