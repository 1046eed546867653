"""The disentanglement metrics against known truth (issue 23): synthetic ground truth (factor
classes drawn uniformly, the representation a function of them, no images), hand-made importance
and mutual-information matrices with exact values, a second MIG implementation, and the command."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from genlab.data import dsprites
from genlab.eval.disentanglement import SyntheticFactors, evaluate_representation, factor_vae, mig, modularity, sap
from genlab.eval.disentanglement import dci as dci_mod
from genlab.eval.disentanglement.ground_truth import CodeCache
from genlab.eval.disentanglement.protocol import PROTOCOLS, TEST, SAPSettings, get_protocol

SIZES = (3, 6, 8, 8, 10)  # five factors, each with at most 20 classes (the bins keep them apart)
HEADLINES = ("mig", "betavae_score", "factorvae_score", "sap", "modularity", "explicitness")
# dlib's own tests of SAP use the continuous (correlation) variant: with 8-10 classes a 1-d linear
# classifier cannot name the middle classes, so the discrete SAP of the factors themselves is ~0.3.
CONTINUOUS_SAP = replace(TEST, sap=SAPSettings(num_train=1000, num_test=500, continuous_factors=True))


def scores(result: dict) -> dict[str, float]:
    out = {k: result[k] for k in HEADLINES}
    out.update({f"dci.{k}": v for k, v in result["dci"].items()})
    return out


def rotation(n_latents: int, degrees: float) -> np.ndarray:
    """Rotate factor pairs (0, 1) and (2, 3) by `degrees` (factor 4 is left alone)."""
    r = np.eye(n_latents)
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    for a, b in ((0, 1), (2, 3)):
        r[[a, a, b, b], [a, b, a, b]] = c, -s, s, c
    return r


def standardised(x: np.ndarray, sizes=SIZES) -> np.ndarray:
    return (x - (np.array(sizes) - 1) / 2) / np.array(sizes)


# --- the cases of disentanglement_lib's own tests ------------------------------------------------
def test_the_factors_themselves_score_at_least_0_9_on_every_metric():
    result = evaluate_representation(lambda x: x, SyntheticFactors(SIZES), CONTINUOUS_SAP, 1)
    low = {k: v for k, v in scores(result).items() if v < 0.9}
    assert not low, low
    assert result["factorvae_score"] == 1.0 and result["betavae_score"] == 1.0


def test_an_all_zero_code_scores_at_most_0_2():
    # ten factors of ten classes, so that a classifier that learns nothing is right 1/10 of the time
    # (the accuracies' chance level: BetaVAE 1/K, DCI informativeness 1/classes), as in dlib's tests
    data = SyntheticFactors((10,) * 10)
    result = evaluate_representation(lambda x: np.zeros((len(x), 10)), data, CONTINUOUS_SAP, 1)
    s = scores(result)
    # explicitness is a ROC-AUC: chance is 0.5 (no ranking at all), not 0
    assert s.pop("explicitness") == 0.5
    high = {k: v for k, v in s.items() if v > 0.2}
    assert not high, high


def test_duplicated_latents_give_mig_and_sap_at_most_0_1():
    result = evaluate_representation(lambda x: np.hstack([x, x]), SyntheticFactors(SIZES), CONTINUOUS_SAP, 1)
    assert result["mig"] <= 0.1 and result["sap"] <= 0.1
    # the information is all there, and each latent still holds one factor
    assert result["dci"]["informativeness"] > 0.95 and result["modularity"] > 0.95
    # ... but every factor is spread over two latents of ten
    assert result["dci"]["completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.02)


# --- hand-made matrices with exact values --------------------------------------------------------
def test_dci_on_hand_made_importance_matrices():
    eye = np.eye(5)
    assert dci_mod.disentanglement(eye) == pytest.approx(1.0, abs=1e-8)
    assert dci_mod.completeness(eye) == pytest.approx(1.0, abs=1e-8)
    two_codes_per_factor = np.vstack([eye, eye])  # 10 codes, 5 factors
    assert dci_mod.disentanglement(two_codes_per_factor) == pytest.approx(1.0, abs=1e-8)
    assert dci_mod.completeness(two_codes_per_factor) == pytest.approx(1 - math.log(2) / math.log(10), abs=1e-8)
    one_code_two_factors = np.hstack([eye, eye])  # 5 codes, 10 factors
    assert dci_mod.disentanglement(one_code_two_factors) == pytest.approx(1 - math.log(2) / math.log(10), abs=1e-8)
    assert dci_mod.completeness(one_code_two_factors) == pytest.approx(1.0, abs=1e-8)
    assert 1 - math.log(2) / math.log(10) == pytest.approx(0.699, abs=1e-3)
    # empty codes carry no weight; an all-zero matrix scores 0; a uniform one scores 0
    assert dci_mod.disentanglement(np.vstack([eye, np.zeros((3, 5))])) == pytest.approx(1.0, abs=1e-8)
    assert dci_mod.disentanglement(np.zeros((4, 3))) == pytest.approx(0.0, abs=1e-8)
    assert dci_mod.completeness(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-8)


def test_modularity_and_mig_on_hand_made_mutual_information():
    eye = np.eye(5)
    assert modularity.modularity(eye) == pytest.approx(1.0)
    assert modularity.modularity(np.vstack([eye, eye])) == pytest.approx(1.0)  # redundancy is modular
    # a code holding two of five factors equally: 1 - 1/(K - 1) = 0.75
    assert modularity.modularity(np.hstack([np.ones((1, 2)), np.zeros((1, 3))])) == pytest.approx(0.75)
    # codes with no information count as 0 in the mean
    assert modularity.modularity(np.vstack([np.eye(2), np.zeros((1, 2))])) == pytest.approx(2 / 3)
    h = np.array([math.log(4), math.log(2)])
    mi = np.array([[math.log(4), 0.0], [math.log(4) / 2, math.log(2)], [0.1, 0.0]])
    score, gaps = mig.mig_from_mutual_info(mi, h)
    np.testing.assert_allclose(gaps, [0.5, 1.0])
    assert score == pytest.approx(0.75)
    assert mig.mig_from_mutual_info(np.vstack([eye, eye]), np.ones(5))[0] == 0.0  # duplicated: no gap


def test_factorvae_and_sap_from_hand_made_votes_and_scores():
    votes = np.array([[30, 0, 5], [10, 40, 5], [0, 0, 10]])  # 3 factors x 3 latents
    train, ev = factor_vae.score_from_votes(votes, votes)
    assert train == ev == pytest.approx(80 / 100)  # majority of each column: 30 + 40 + 10
    matrix = np.array([[0.9, 0.2], [0.3, 0.25], [0.1, 0.9]])
    assert sap.sap_from_matrix(matrix) == pytest.approx(((0.9 - 0.3) + (0.9 - 0.25)) / 2)


# --- a known mixing: scores fall monotonically ----------------------------------------------------
def test_rotating_the_factors_lowers_every_disentanglement_score_monotonically():
    # equal factor sizes: a rotated latent holds its two factors alike. Small angles: with discrete
    # factors, past ~20 degrees the mixed pairs' gaps are ~0 and lattice coincidences of the rotated
    # classes (45 degrees: f_a - f_b takes 11 values, not 36) move the binned MI in either direction.
    sizes = (6,) * 5
    data = SyntheticFactors(sizes)
    angles = (0, 5, 10, 15)
    by_angle = {}
    for deg in angles:
        r = rotation(5, deg)
        by_angle[deg] = scores(evaluate_representation(lambda x, r=r: standardised(x, sizes) @ r.T, data,
                                                       CONTINUOUS_SAP, 1))
    for key in ("mig", "sap", "modularity"):  # information- and correlation-based: fall at once
        values = [by_angle[d][key] for d in angles]
        assert all(a > b for a, b in zip(values, values[1:])), (key, values)
    # tree importances: while one latent still separates a factor's classes by thresholds alone, the
    # trees need no other; they fall once the classes overlap along it (here between 10 and 15 degrees)
    for key in ("dci.disentanglement", "dci.completeness"):
        values = [by_angle[d][key] for d in angles]
        assert all(a >= b - 1e-9 for a, b in zip(values, values[1:])) and values[-1] < values[0] - 0.1, (key, values)
    assert by_angle[15]["mig"] < 0.5 < by_angle[0]["mig"]
    # a rotation loses no information: a linear read-out of all latents (explicitness) does not care
    ex = [by_angle[d]["explicitness"] for d in angles]
    assert max(ex) - min(ex) < 0.02
    # the FactorVAE score is a majority vote: it holds at 1 while the rotated latent still varies
    # least with its factor fixed, and drops once two latents tie (45 degrees)
    fv = {}
    for deg in (15, 45):
        r = rotation(5, deg)
        codes = CodeCache(data, lambda x, r=r: standardised(x, sizes) @ r.T)
        fv[deg] = factor_vae.compute(codes, data, np.random.default_rng(0), TEST.factorvae)["score"]
    assert by_angle[0]["factorvae_score"] == fv[15] == 1.0 and fv[45] < 0.8, fv


# --- the ceilings on dSprites' own factor sizes ---------------------------------------------------
def binned_entropy_ratio(n_classes: int, bins: int = 20) -> float:
    """H(bin of a uniform class) / H(class): 20 equal-width bins over 0..n-1 merge some classes."""
    edges = np.linspace(0, n_classes - 1, bins + 1)
    counts = np.bincount(np.clip(np.searchsorted(edges, np.arange(n_classes), side="right") - 1, 0, bins - 1))
    p = counts[counts > 0] / n_classes
    return float(-(p * np.log(p)).sum() / math.log(n_classes))


def test_the_true_dsprites_factors_score_mig_0_90_under_20_bins():
    sizes = dsprites.LATENT_SIZES[1:]
    expected = np.mean([binned_entropy_ratio(n) for n in sizes])  # shape, scale 1; orientation 0.81; pos 0.85
    assert expected == pytest.approx(0.90, abs=0.01)
    f = SyntheticFactors(sizes).sample_factors(20000, np.random.default_rng(0))
    assert mig.mig(f.astype(float), f, 20)["score"] == pytest.approx(expected, abs=0.015)


def test_orientation_index_0_and_39_draw_the_same_image():
    for shape in range(3):
        a = dsprites.render(np.array([[0, shape, 3, 0, 10, 20]]))
        b = dsprites.render(np.array([[0, shape, 3, 39, 10, 20]]))
        c = dsprites.render(np.array([[0, shape, 3, 1, 10, 20]]))
        assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- an independent MIG ---------------------------------------------------------------------------
def load_benchmark(name: str):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("degrees", [0, 20, 45])
def test_mig_agrees_with_the_independent_implementation(degrees):
    independent = load_benchmark("mig_independent")
    rng = np.random.default_rng(degrees)
    f = SyntheticFactors(dsprites.LATENT_SIZES[1:]).sample_factors(5000, rng)
    codes = np.hstack([standardised(f, dsprites.LATENT_SIZES[1:]) @ rotation(5, degrees).T,
                       rng.normal(size=(5000, 3))]) + 0.05 * rng.normal(size=(5000, 8))
    ours = mig.mig(codes, f, 20)
    theirs, gaps, mi = independent.mig_independent(codes, f, 20)
    assert ours["score"] == pytest.approx(theirs, abs=1e-9)
    np.testing.assert_allclose(ours["mutual_info"], mi, atol=1e-9)


# --- plumbing ------------------------------------------------------------------------------------
def test_codes_are_computed_once_per_factor_combination():
    data = SyntheticFactors((3, 4))
    calls = []

    def represent(x):
        calls.append(len(x))
        return x * 2.0

    cache = CodeCache(data, represent)
    f = data.sample_factors(500, np.random.default_rng(0))
    np.testing.assert_array_equal(cache(f), f * 2.0)
    np.testing.assert_array_equal(cache(f[::-1]), f[::-1] * 2.0)
    assert sum(calls) == cache.encoded == 12  # every combination once, however often drawn


def test_the_result_records_protocol_seeds_versions_and_spread():
    result = evaluate_representation(lambda x: x, SyntheticFactors((2, 3, 4)), "test", 3)
    p = result["protocol"]
    assert p["name"] == "test" and p["seeds"] == [0, 1, 2] and p["mig"]["bins"] == 20
    assert {"numpy", "scikit-learn", "torch", "scipy"} <= set(p["versions"])
    assert "C=0.01" in p["sap"]["classifier"]
    for key, s in result["spread"].items():
        assert len(s["values"]) == 3 and s["min"] <= s["median"] <= s["max"], key
    assert result["mig"] == result["spread"]["mig"]["median"]
    assert set(result["dci"]) == {"disentanglement", "completeness", "informativeness"}
    json.dumps(result)  # all of it is JSON


def test_progress_counts_every_code_looked_up():
    seen = []
    evaluate_representation(lambda x: x, SyntheticFactors((2, 3, 4)), "test", 2, advance=seen.append)
    assert sum(seen) == 2 * TEST.draws_per_seed()


def test_protocols_are_named_and_checked():
    assert PROTOCOLS["dlib"].betavae.num_train == 10000 and PROTOCOLS["dlib"].factorvae.prune_std == 0.05
    assert PROTOCOLS["dlib"].dci.n_estimators == 100 and PROTOCOLS["dlib"].sap.continuous_factors is False
    assert get_protocol("cpu", 5).seeds == 5
    from genlab.errors import GenlabError

    with pytest.raises(GenlabError, match="--protocol"):
        get_protocol("fast")
    with pytest.raises(GenlabError, match="--seeds"):
        get_protocol("cpu", 0)


# --- the command -----------------------------------------------------------------------------------
TINY = replace(TEST, name="cpu", betavae=replace(TEST.betavae, batch_size=8, num_train=100, num_eval=60),
               factorvae=replace(TEST.factorvae, batch_size=8, num_train=100, num_eval=60, num_variance_estimate=300),
               mig=replace(TEST.mig, num_train=600), sap=replace(TEST.sap, num_train=300, num_test=200),
               dci=replace(TEST.dci, num_train=300, num_test=200, n_estimators=3),
               modularity=replace(TEST.modularity, num_train=300, num_test=200))


@pytest.fixture
def tiny_run(tiny_cfg, monkeypatch):
    from genlab.train.runner import train

    monkeypatch.setitem(PROTOCOLS, "cpu", TINY)  # the command's cheap protocol, made tiny for a test
    return train(tiny_cfg("model.sample_prior=standard", "trainer.max_epochs=1")).path


def one_line_error(out: str, *needles: str) -> None:
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_genlab_disentangle_writes_the_result_figures_and_report(tiny_run, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from genlab.cli import main
    from genlab.viz.report import write_report

    assert main(["disentangle", str(tiny_run), "--protocol", "cpu", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "MIG" in out and "disentanglement.json" in out
    result = json.loads((tiny_run / "eval" / "disentanglement.json").read_text())
    for key in ("mig", "factorvae_score", "betavae_score", "sap", "modularity", "explicitness", "protocol"):
        assert key in result, key
    assert set(result["dci"]) == {"disentanglement", "completeness", "informativeness"}
    assert result["protocol"]["seeds"] == [0, 1] and result["protocol"]["betavae"]["num_train"] == 100
    assert all(0 <= result[k] <= 1 for k in ("mig", "sap", "modularity", "betavae_score"))
    d = len(result["latent_factor_mi"]["normalised"])
    assert d == 8 and len(result["latent_factor_mi"]["normalised"][0]) == 5  # 8 latents x 5 factors
    folder = tiny_run / "eval" / "disentanglement"
    gif = Image.open(folder / "traversals.gif")
    assert gif.n_frames == 2 * 10 - 2  # there and back
    png = Image.open(folder / "traversals.png")
    assert png.height >= d * 64  # one row per latent
    assert Image.open(folder / "mi_heatmap.png").width > 100
    assert len(result["traversal"]["labels"]) == d and result["traversal"]["labels"][0].startswith("z0: ")
    html = write_report([tiny_run]).read_text()
    assert "traversals.gif" in html and "mi_heatmap.png" in html and "Disentanglement" in html
    assert "[min, max]" in html
    errors_are_one_line(tiny_run, tmp_path, capsys, monkeypatch)  # the same run: one training per test file


def errors_are_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    import yaml

    from genlab.cli import main
    from genlab.runs import Run

    (tiny_run / "eval" / "disentanglement.json").unlink()
    assert main(["disentangle", str(tiny_run), "--data-root", str(tmp_path / "nowhere.npz")]) == 2
    one_line_error(capsys.readouterr().out, "nowhere.npz", "not found")
    assert main(["disentangle", str(tiny_run), "--seeds", "0"]) == 2
    one_line_error(capsys.readouterr().out, "--seeds")
    # a model without an encoder (a GAN's generator)
    monkeypatch.setattr(Run, "load_model", lambda self, which="best", device="cpu": torch_module())
    assert main(["disentangle", str(tiny_run)]) == 2
    one_line_error(capsys.readouterr().out, "no encoder")
    monkeypatch.undo()
    # a run on another dataset
    cfg_path = tiny_run / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["data"]["name"] = "celeba"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["disentangle", str(tiny_run)]) == 2
    one_line_error(capsys.readouterr().out, "celeba", "dSprites")
    assert not (tiny_run / "eval" / "disentanglement.json").exists()


def torch_module():
    import torch

    from genlab.models.contract import Generative

    class Generator(Generative):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

    return Generator()


def test_a_factor_constant_in_the_sample_is_left_out_of_mig():
    independent = load_benchmark("mig_independent")
    rng = np.random.default_rng(0)
    f = SyntheticFactors((3, 6, 8)).sample_factors(3000, rng)
    f[:, 0] = 1  # e.g. the first rows of an index-ordered file: one shape only
    codes = f + 0.1 * rng.normal(size=f.shape)
    ours = mig.mig(codes, f, 20)
    assert np.isnan(ours["per_factor"][0]) and ours["score"] == pytest.approx(np.mean(ours["per_factor"][1:]))
    assert ours["score"] == pytest.approx(independent.mig_independent(codes, f, 20)[0], abs=1e-9)


def test_dsprites_ground_truth_reads_the_cached_render_like_the_renderer(monkeypatch, tmp_path):
    from genlab.eval.disentanglement import DSpritesFactors

    f = DSpritesFactors().sample_factors(50, np.random.default_rng(0))
    rendered = DSpritesFactors().observe(f)
    assert rendered.shape == (50, 1, 64, 64) and set(np.unique(rendered)) <= {0.0, 1.0}
    # a stand-in for the whole-set cache: only the rows drawn here are filled in
    packed = np.zeros((dsprites.N_IMAGES, 64, 8), np.uint8)
    classes = np.concatenate([np.zeros((50, 1), np.int64), f], axis=1)
    packed[dsprites.classes_to_index(classes)] = dsprites.render_packed(classes)
    monkeypatch.setattr(dsprites, "cache_path", lambda: tmp_path / "all.npy")
    (tmp_path / "all.npy").touch()
    monkeypatch.setattr(dsprites, "load_all", lambda build=True: packed)
    cached = DSpritesFactors()
    assert "cached" in cached.description
    np.testing.assert_array_equal(cached.observe(f), rendered)
