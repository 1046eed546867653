"""Marginal-likelihood estimators against the closed form of a linear-Gaussian VAE.

The truth is `LinearGaussianVAE.exact_log_marginal` (x ~ N(b, W W^T + sigma^2 I)), itself checked
against quadrature at d = 2. Data are simulated from the model, so the z that made each x is an
exact posterior sample (what BDMC needs).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genlab.errors import GenlabError
from genlab.eval.ais import ais, bdmc, schedule, simulate
from genlab.eval.appendix_d import appendix_d
from genlab.eval.importance import importance_sampling
from genlab.eval.likelihood import format_entry, loglik_table, save_evaluation
from genlab.models.linear_gaussian import LinearGaussianVAE

DATA_DIM = {2: 20, 16: 40, 64: 160}
N_IMAGES = 3


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)  # later tests (bit-exact resume against a subprocess) need the default


def _problem(d: int, **encoder):
    model = LinearGaussianVAE(DATA_DIM[d], d, sigma=0.5, seed=1, **encoder)
    x, z = simulate(model, N_IMAGES, seed=3)
    return model, x, z, model.exact_log_marginal(x).numpy()


def test_exact_log_marginal_matches_quadrature():
    model = LinearGaussianVAE(6, 2, sigma=0.7, seed=2)
    x, _ = simulate(model, 2, seed=0)
    grid = torch.linspace(-6, 6, 601, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2)
    log_joint = (model.log_prior(z) + model.log_likelihood(x.double(), z.float()).double())
    cell = math.log((grid[1] - grid[0]).item() ** 2)
    quad = torch.logsumexp(log_joint, 0) + cell
    np.testing.assert_allclose(quad.numpy(), model.exact_log_marginal(x).numpy(), atol=1e-3)


def test_encoder_is_deliberately_not_the_posterior():
    model, x, _, _ = _problem(2)
    mean, cov = model.posterior(x)
    enc_mean, enc_logvar = model.encode(x)
    assert (enc_mean.double() - mean).abs().min() > 0.1 * cov.diagonal().sqrt().min()
    assert torch.allclose(enc_logvar.exp().double(), 1.5 * cov.diagonal().expand_as(mean), rtol=1e-4)


@pytest.mark.parametrize("d", [2, 16])
def test_importance_sampling_within_half_a_nat(d):
    model, x, _, exact = _problem(d)
    est = importance_sampling(model, x, 2000, proposal="encoder")
    assert np.abs(est.log_px - exact).max() < 0.5
    # Jensen on the same samples: the mean log-weight (ELBO) never exceeds the log mean weight.
    assert np.all(est.extras["elbo"] <= est.log_px)
    assert np.all(est.extras["elbo"] <= exact + 3 * est.extras["elbo_se"])
    assert np.all(exact - est.extras["elbo"] > 0.3)  # the encoder really is off


@pytest.mark.parametrize("d", [2, 16])
def test_importance_sampling_within_a_tenth_of_a_nat_with_a_close_encoder(d):
    model, x, _, exact = _problem(d, encoder_shift=0.1, encoder_inflation=1.2)
    est = importance_sampling(model, x, 5000, proposal="encoder")
    assert np.all(np.abs(est.log_px - exact) < np.maximum(0.1, 3 * est.se)) and est.se.max() < 0.15


def test_importance_sampling_standard_error_shrinks_and_is_calibrated():
    model, x, _, exact = _problem(2)
    small = importance_sampling(model, x, 100, proposal="encoder")
    large = importance_sampling(model, x, 10_000, proposal="encoder")
    assert np.all(large.se < small.se / 4)  # ~ 1/sqrt(K): a factor 10 expected (replicate se is noisy)
    # The reported (replicate) se matches the spread of the estimate over independent seeds.
    runs = [importance_sampling(model, x, 100, seed=s, proposal="encoder") for s in range(40)]
    reps = np.stack([r.log_px for r in runs])
    ratio = reps.std(0, ddof=1) / np.mean([r.se for r in runs], 0)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    assert np.abs(reps.mean(0) - exact).max() < 0.05


def test_importance_sampling_chunking_does_not_change_the_answer():
    model, x, _, _ = _problem(2)
    a = importance_sampling(model, x, 300, batch_size=1000, proposal="encoder")
    b = importance_sampling(model, x, 300, batch_size=7, proposal="encoder")  # odd chunks
    assert np.all(np.isfinite(b.log_px)) and np.abs(a.log_px - b.log_px).max() < 0.1


@pytest.mark.parametrize("d", [2, 16])
def test_ais_from_the_encoder_within_half_a_nat(d):
    model, x, _, exact = _problem(d)
    est = ais(model, x)
    assert np.abs(est.log_px - exact).max() < 0.5
    assert np.all((est.acceptance > 0.5) & (est.acceptance < 0.95))


@pytest.mark.parametrize("d, n_intermediate", [(2, 300), (16, 1000)])
def test_ais_from_the_prior_within_half_a_nat(d, n_intermediate):
    model, x, _, exact = _problem(d)
    est = ais(model, x, init="prior", n_intermediate=n_intermediate)
    assert np.abs(est.log_px - exact).max() < 0.5


def test_ais_with_few_temperatures_is_a_lower_bound():
    # Too short an annealing path underestimates log p(x): the stochastic lower bound is visible.
    model, x, _, exact = _problem(16)
    est = ais(model, x, init="prior", n_intermediate=10)
    assert np.all(est.log_px < exact - 1.0)


@pytest.mark.parametrize("d, init, n_intermediate", [(2, "prior", 200), (16, "encoder", 200)])
def test_bdmc_brackets_the_exact_value(d, init, n_intermediate):
    model, x, z, exact = _problem(d)
    res = bdmc(model, x, z, init=init, n_intermediate=n_intermediate, n_chains=32)
    # Both bounds hold in expectation; allow their Monte Carlo noise (3 standard errors).
    assert np.all(res.lower.log_px <= exact + 0.1 + 3 * res.lower.se)
    assert np.all(res.upper.log_px >= exact - 0.1 - 3 * res.upper.se)
    assert np.all(res.gap < 1.0)


def test_bdmc_upper_bound_is_above_with_a_short_path():
    model, x, z, exact = _problem(16)
    res = bdmc(model, x, z, init="prior", n_intermediate=10)
    assert np.all(res.upper.log_px > exact + 1.0) and np.all(res.lower.log_px < exact - 1.0)


def test_appendix_d_at_d2_within_half_a_nat():
    model, x, _, exact = _problem(2)
    est = appendix_d(model, x)
    assert np.abs(est.log_px - exact).max() < 0.5
    # Adapted towards 0.75; the averaged step kept after burn-in is a little conservative.
    assert np.all((est.acceptance > 0.6) & (est.acceptance < 0.95))
    assert est.n_samples == 1000


def test_appendix_d_with_a_gaussian_mixture():
    model, x, _, exact = _problem(2)
    est = appendix_d(model, x, 400, density="gmm", n_components=2, burn_in=30)
    assert np.abs(est.log_px - exact).max() < 0.5


def test_schedules_run_from_zero_to_one():
    for name in ("sigmoid", "geometric", "linear"):
        b = schedule(name, 50)
        assert b[0] == 0 and b[-1] == 1 and len(b) == 51 and torch.all(b.diff() > 0)


def test_table_units_and_json(tmp_path):
    model, x, _, _ = _problem(2)
    table = loglik_table(model, x, image_ids=[7, 11, 42], estimators="all", samples=500, seed=0,
                         appendix_d={"n_samples": 200, "burn_in": 30}, ais={"n_intermediate": 50})
    assert list(table.estimates) == ["is", "appendix-d", "ais"]
    # The same images and seed as a direct call give the same IS numbers.
    direct = importance_sampling(model, x, 500, seed=0, image_ids=[7, 11, 42])
    np.testing.assert_allclose(table.estimates["is"].log_px, direct.log_px)
    path = table.save(tmp_path / "run" / "loglik.json")
    data = json.loads(path.read_text())
    assert data["likelihood"] == "gaussian" and "1/256" in data["convention"]
    assert [r["id"] for r in data["images"]] == [7, 11, 42]
    D = DATA_DIM[2]
    for row, est_px in zip(data["images"], table.estimates["ais"].log_px):
        r = row["ais"]
        assert r["log_px"] == pytest.approx(est_px)
        # Independent truth: a continuous density on [0,1]^D, 8-bit bins of width 1/256.
        assert r["bits_per_dim"] == pytest.approx(-r["log_px"] / (D * math.log(2)) + 8.0)
        assert r["bits_per_dim_se"] == pytest.approx(r["se"] / (D * math.log(2)))
        assert r["log10_px"] == pytest.approx(r["log_px"] / math.log(10))
        assert row["elbo"] <= row["is"]["log_px"]
    meta = data["estimators"]
    assert meta["is"]["n_samples"] == 500 and meta["appendix-d"]["n_samples"] == 200
    assert meta["ais"]["settings"]["n_intermediate"] == 50 and 0 < meta["ais"]["mean_acceptance"] < 1
    assert all(m["seconds_per_image"] > 0 for m in meta.values())

    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(table.rich_table())
    text = console.export_text()
    assert "42" in text and "appendix-d" in text and "bits/dim" in text


def test_user_mistakes_are_genlab_errors():
    model, x, _, _ = _problem(2)
    with pytest.raises(GenlabError, match="estimator"):
        loglik_table(model, x, estimators=("is", "harmonic"))
    with pytest.raises(GenlabError, match="n_chainz"):
        loglik_table(model, x, estimators="ais", ais={"n_chainz": 3})
    with pytest.raises(GenlabError, match="ids"):
        loglik_table(model, x, image_ids=[1])
    with pytest.raises(GenlabError, match="samples"):
        importance_sampling(model, x, 0)
    with pytest.raises(GenlabError, match="schedule"):
        ais(model, x, schedule_name="cosine")
    with pytest.raises(GenlabError, match="z_exact"):
        bdmc(model, x, torch.zeros(1, 2))


def test_estimators_run_on_a_tiny_conv_vae():
    from genlab.models.vae import ConvVAE

    torch.manual_seed(0)
    model = ConvVAE(1, 32, latent_dim=4, channels=(8, 16))
    images = torch.rand(2, 1, 32, 32)
    table = loglik_table(model, images, estimators="all", samples=64,
                         appendix_d={"n_samples": 40, "n_chains": 4, "burn_in": 5},
                         ais={"n_chains": 4, "n_intermediate": 10})
    for est in table.estimates.values():
        assert est.log_px.shape == est.se.shape == (2,)
        assert np.all(np.isfinite(est.log_px)) and np.all(np.isfinite(est.se))
    assert np.all(np.isfinite(table.elbo)) and table.num_dims == 32 * 32
    assert model.training  # evaluation left the model as it found it


# --- issue 11: converged estimates, honest error bars, a flag when they are not -----------------
@pytest.mark.parametrize("d", [2, 16, 64])
def test_default_estimator_within_half_a_nat_and_converged(d):
    model, x, _, exact = _problem(d)
    est = importance_sampling(model, x)  # the defaults: mode-centred proposal, K = 1000
    assert est.settings["proposal"] == "laplace"
    assert np.abs(est.log_px - exact).max() < 0.5
    assert est.converged.all() and np.all(est.ess > 30)


def test_the_mode_search_reaches_the_exact_posterior_mean():
    from genlab.eval.importance import laplace_fit

    model, x, _, _ = _problem(16)
    fit = laplace_fit(model, x)
    mean, cov = model.posterior(x)
    np.testing.assert_allclose(fit.mode.double().numpy(), mean.numpy(), atol=1e-3)
    # the curvature there is the exact posterior precision: root root^T = cov
    approx = fit.root.double() @ fit.root.double().transpose(1, 2)
    np.testing.assert_allclose(approx[0].numpy(), cov.numpy(), atol=1e-3)
    assert np.all(fit.mode_log_joint.numpy() > fit.start_log_joint.numpy())


@pytest.mark.parametrize("proposal", ["laplace", "encoder"])
def test_a_starved_setting_is_reported_not_converged(proposal):
    model, x, _, exact = _problem(64)
    est = importance_sampling(model, x, 10, proposal=proposal)
    assert not est.converged.any()
    assert np.all(est.ess <= 10)


def test_far_off_encoder_is_is_flagged_and_its_error_bar_is_not_capped():
    model, x, _, exact = _problem(64)
    est = importance_sampling(model, x, 1000, proposal="encoder")
    off = np.abs(est.log_px - exact) > 2
    assert off.any() and not est.converged[off].any()
    # the delta-method se cannot exceed ~1 nat; the replicate spread can, and does here
    assert np.all(est.extras["delta_se"] <= 1.0) and est.se.max() > 1.0


def test_replicate_error_bar_covers_the_truth_at_its_nominal_rate():
    model, x, _, exact = _problem(2)
    hits = []
    for s in range(60):
        est = importance_sampling(model, x, 200, proposal="encoder", seed=s)
        hits.append(np.abs(est.log_px - exact) <= 1.96 * est.se)
    coverage = np.mean(hits)
    assert 0.85 <= coverage <= 0.995, coverage  # nominal 95% (10 replicates: the se itself is noisy)


def test_an_image_gets_the_same_numbers_whatever_else_is_scored():
    model, x, _, _ = _problem(16)
    together = importance_sampling(model, x, 200, image_ids=[5, 6, 7])
    alone = importance_sampling(model, x[1:2], 200, image_ids=[6])
    np.testing.assert_allclose(alone.log_px, together.log_px[1:2], atol=1e-5)
    flipped = importance_sampling(model, x.flip(0), 200, image_ids=[7, 6, 5])
    np.testing.assert_allclose(flipped.log_px[::-1], together.log_px, atol=1e-5)


def test_same_seed_same_numbers_across_two_processes():
    import subprocess
    import sys

    code = ("import torch, json; torch.set_num_threads(1)\n"
            "from genlab.models.linear_gaussian import LinearGaussianVAE\n"
            "from genlab.eval.ais import simulate\n"
            "from genlab.eval.likelihood import loglik_table\n"
            "m = LinearGaussianVAE(40, 16, sigma=0.5, seed=1); x, _ = simulate(m, 3, seed=3)\n"
            "t = loglik_table(m, x, [3, 1, 4], estimators=('is', 'ais'), samples=300, seed=7,\n"
            "                 ais={'n_intermediate': 20, 'n_chains': 8})\n"
            "print(json.dumps([[r[k]['log_px'] for k in ('is', 'ais')] + [r['elbo']] for r in t.rows()]))\n")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert outs[0] == outs[1] and len(json.loads(outs[0])) == 3


def test_ais_flags_a_short_path_and_converges_at_its_defaults():
    model, x, _, exact = _problem(16)
    short = ais(model, x, init="prior", n_intermediate=10)
    assert not short.converged.any() and np.all(short.log_px < exact - 1.0)
    est = ais(model, x)
    assert np.abs(est.log_px - exact).max() < 0.5 and est.converged.all()
    assert np.all(est.ess <= 16) and np.all(np.isfinite(est.gain))


def test_table_rows_carry_ess_converged_and_best(tmp_path):
    model, x, _, exact = _problem(16)
    table = loglik_table(model, x, image_ids=[3, 1, 4], estimators=("is", "appendix-d"), samples=1000,
                         appendix_d={"n_samples": 100, "burn_in": 10})
    rows = table.to_dict()["images"]
    for row, truth in zip(rows, exact):
        for name in ("is", "appendix-d"):
            assert {"ess", "converged", "log_px", "se"} <= set(row[name])
        assert row["best"]["estimator"] == "is"  # never Appendix D (a diagnostic)
        assert row["best"]["log_px"] == pytest.approx(row["is"]["log_px"])
        assert abs(row["best"]["log_px"] - truth) < 0.5
    starved = loglik_table(model, x, estimators="is", samples=10, is_={"proposal": "encoder"})
    assert all(r["best"] is None for r in starved.rows())
    cell = format_entry(starved.rows()[0]["is"])
    assert cell.startswith("≥") and "not converged, ESS" in cell and "±" not in cell
    from rich.console import Console

    console = Console(record=True, width=300)
    console.print(starved.rich_table())
    text = console.export_text()
    assert "none converged" in text and "cannot be compared" in text


def test_an_earlier_table_is_not_overwritten(tmp_path):
    model, x, _, _ = _problem(2)
    x = x.clamp(0, 1)
    first = loglik_table(model, x, [10, 20, 30], estimators="is", samples=100)
    latest = save_evaluation(first, tmp_path / "eval", x, {"seed": 0})
    first_file = tmp_path / "eval" / first.provenance["table_file"]
    before = first_file.read_text()
    second = loglik_table(model, x, [10, 20, 30], estimators="is", samples=200, seed=1)
    save_evaluation(second, tmp_path / "eval", x, {"seed": 1})
    assert first_file.read_text() == before  # untouched
    tables = sorted((tmp_path / "eval").glob("loglik-*.json"))
    assert len(tables) == 2
    data = json.loads(latest.read_text())
    assert data["provenance"]["table_file"] == second.provenance["table_file"] != first_file.name
    assert data["provenance"]["earlier_tables"] == [first_file.name] and data["provenance"]["settings"] == {"seed": 1}
    assert [r["id"] for r in data["images"]] == [10, 20, 30]
    pixels = np.load(tmp_path / "eval" / "loglik_images.npy")
    assert pixels.dtype == np.uint8 and pixels.shape == tuple(x.shape)
    np.testing.assert_array_equal(pixels, np.rint(x.double().numpy() * 255).astype(np.uint8))
    assert (tmp_path / "eval" / first.provenance["images_file"]).is_file()


def test_bdmc_table_reports_the_bracket_width():
    from genlab.eval.likelihood import bdmc_table

    model, x, z, exact = _problem(2)
    res = bdmc(model, x, z, n_intermediate=100, n_chains=8, check=False)
    data = bdmc_table(res, [0, 1, 2])
    widths = np.array([r["bracket_width"] for r in data["images"]])
    np.testing.assert_allclose(widths, res.upper.log_px - res.lower.log_px)
    assert data["max_bracket_width"] == pytest.approx(widths.max()) and widths.max() < 1.0
    for r, truth in zip(data["images"], exact):
        assert r["lower"] - 3 * r["lower_se"] - 0.1 <= truth <= r["upper"] + 3 * r["upper_se"] + 0.1
        assert 1 <= r["lower_ess"] <= 8 and 1 <= r["upper_ess"] <= 8
