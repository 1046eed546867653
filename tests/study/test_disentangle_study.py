"""`genlab study --profile disentangle-tiny`: the four disentangling VAEs x 3 seeds train, each run is scored
(here by a stand-in for `genlab disentangle`'s evaluate_run that writes known numbers in its file's shape,
so the summary can be checked exactly; the metrics themselves are tested in tests/eval), and the report
gives median [min, max] over seeds beside the published ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from genlab.errors import GenlabError
from genlab.io import atomic_write_json
from genlab.study import pipeline
from genlab.study.plan import DISENTANGLE_STAGES, load_profile, skipped_stages
from genlab.study.report import PUBLISHED_DSPRITES, collect_study, write_study_report

MODEL_OFFSET = {"vae": 0.0, "betavae": 0.1, "btcvae": 0.2, "factorvae": 0.3}
SKIPPED = ["betavae", "factorvae"]  # two models x 3 seeds keep the test short (each trains in tests/train)
RAN = [s for s in DISENTANGLE_STAGES if s.group not in SKIPPED]


def known_scores(run_dir: Path) -> dict:
    """What the stand-in writes, shaped as genlab disentangle's file (each metric's median over evaluation
    seeds): every metric = offset of the model + 0.01 * (seed + 1); DCI completeness 0.5 + that."""
    model, seed = run_dir.name.rsplit("-seed", 1)
    v = MODEL_OFFSET[model] + 0.01 * (int(seed) + 1)
    return {"mig": v, "factorvae_score": v, "betavae_score": v, "sap": v, "modularity": v, "explicitness": v,
            "dci": {"disentanglement": v, "completeness": 0.5 + v, "informativeness": v},
            "protocol": {"name": "stand-in"}}


@pytest.fixture(scope="module")
def disentangle_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "disentangle"
    calls: list[tuple[str, dict]] = []

    def evaluate_run(run_dir, **options):
        calls.append((Path(run_dir).name, options))
        path = Path(run_dir) / "eval" / "disentanglement.json"
        atomic_write_json(path, known_scores(Path(run_dir)))
        return path

    mp = pytest.MonkeyPatch()
    mp.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setattr("genlab.eval.disentanglement.evaluate_run", evaluate_run)  # the real one: tests/eval
    try:
        outcome = pipeline.run_study(folder, profile="disentangle-tiny", skip=SKIPPED)
    finally:
        mp.undo()
    return folder, outcome, calls


def test_every_model_and_seed_trains_and_is_scored(disentangle_study):
    folder, outcome, calls = disentangle_study
    assert outcome == {s.name: "skipped" if s.group in SKIPPED else "done" for s in DISENTANGLE_STAGES}
    assert sorted(name for name, _ in calls) == sorted(s.name for s in RAN)
    assert all(options == {"protocol": "cpu", "n_seeds": 1} for _, options in calls)  # the profile's step options
    for i in range(3):
        cfg = yaml.safe_load((folder / f"btcvae-seed{i}" / "config.yaml").read_text())
        assert cfg["trainer"]["seed"] == i and cfg["model"]["name"] == "btcvae"
    assert yaml.safe_load((folder / "vae-seed0" / "config.yaml").read_text())["model"]["beta"] == 1.0


def test_the_report_gives_median_min_max_over_seeds_beside_published_ranges(disentangle_study, tmp_path):
    folder, _, _ = disentangle_study
    rows = collect_study(folder)["disentanglement"]["rows"]
    assert {r["model"] for r in rows} == {"vae", "btcvae"}  # the skipped models have no rows
    mig = next(r for r in rows if r["model"] == "btcvae" and r["metric"] == "mig")
    assert (mig["min"], mig["median"], mig["max"]) == pytest.approx((0.21, 0.22, 0.23))
    assert mig["n_seeds"] == 3
    assert (mig["published_min"], mig["published_max"]) == PUBLISHED_DSPRITES["mig"]
    completeness = next(r for r in rows if r["model"] == "vae" and r["metric"] == "dci.completeness")
    assert completeness["median"] == pytest.approx(0.52) and completeness["published_min"] is None
    page = write_study_report(folder, tmp_path / "docs")
    md = (tmp_path / "docs" / "study.md").read_text()
    assert "| beta-TCVAE | MIG | 0.220 [0.210, 0.230] | 3 |" in md
    assert "300,000 steps at batch 64" in md and "not reported" in md
    html = page.read_text()
    assert "0.220 [0.210, 0.230]" in html and "Locatello et al. 2019" in html


def test_a_changed_score_file_changes_the_report(disentangle_study):
    folder, _, _ = disentangle_study
    path = folder / "vae-seed2" / "eval" / "disentanglement.json"
    original = path.read_text()
    try:
        data = json.loads(original)
        data["mig"] = 0.9
        path.write_text(json.dumps(data))
        mig = next(r for r in collect_study(folder)["disentanglement"]["rows"]
                   if r["model"] == "vae" and r["metric"] == "mig")
        assert mig["max"] == 0.9
    finally:
        path.write_text(original)


def test_the_profile_and_skips_are_checked():
    full = load_profile("disentangle")
    assert full.study == "disentangle" and set(full.stages) == {s.name for s in DISENTANGLE_STAGES}
    assert all(full.settings(s.name).config == f"dsprites-{s.group}" for s in DISENTANGLE_STAGES)
    skipped = skipped_stages(["factorvae"], DISENTANGLE_STAGES)
    assert set(skipped) == {"factorvae-seed0", "factorvae-seed1", "factorvae-seed2"}
    with pytest.raises(GenlabError, match="models: betavae, btcvae, factorvae, vae"):
        skipped_stages(["factorvea"], DISENTANGLE_STAGES)
