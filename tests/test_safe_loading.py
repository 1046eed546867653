"""Opening a shared run runs no code (issue 24). A copied run whose checkpoints, priors and npz files
carry a pickled object that would create a marker file when unpickled: every loader refuses it in
one line naming the file (exit 2 on the command line) and the marker never appears. Everything
genlab writes itself still loads: priors round-trip through their array form, a resume continues."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import tiny_images

import genlab
from genlab.cli import main
from genlab.data import dsprites as ds
from genlab.data import registry
from genlab.errors import GenlabError
from genlab.eval.aggregate_prior import LatentGMM, load_aggregate_prior, prior_path
from genlab.models.priors.gmm import GMMPrior
from genlab.runs import Run
from genlab.safe_load import load_arrays, save_arrays

REFUSED = "it holds a Python object, not weights; genlab will not run code"


class Payload:
    """Unpickling it opens `marker` for writing: the file appearing means code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    from tests.viz.conftest import train_tiny

    return train_tiny(tmp_path_factory.mktemp("safe-runs"), "trainer.max_epochs=1", "output.run_name=clean")


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


def object_npz(path: Path, marker: Path, key: str = "settings", **arrays) -> Path:
    """An npz whose entry `key` is an object array (a pickle) holding the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, **{key: np.array([Payload(marker)], dtype=object)})
    return path


@pytest.fixture
def planted(run, tmp_path, marker) -> Path:
    """A copy of the finished run with a payload in both checkpoints and in every prior file."""
    copy = Path(shutil.copytree(run.path, tmp_path / "shared-run"))
    for name in ("best.ckpt", "last.ckpt"):
        path = copy / "checkpoints" / name
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["genlab"]["note"] = Payload(marker)  # one object among genuine weights
        torch.save(ckpt, path)
    priors = copy / "priors"
    object_npz(priors / "gmm" / "prior.npz", marker)
    object_npz(priors / "aggregate-gmm" / "prior.npz", marker)
    (priors / "pixelcnn").mkdir(parents=True)
    torch.save({"config": {}, "grid": [8, 8], "state_dict": Payload(marker)}, priors / "pixelcnn" / "prior.pt")
    object_npz(copy / "codes" / "codes.npz", marker, "codebook", indices=np.zeros((2, 8, 8), np.uint16),
               ids=np.array(["a", "b"]), split=np.array(["train", "val"]))
    assert not marker.exists()
    return copy


def assert_refused(message: str, *names: str) -> None:
    assert "\n" not in message.strip(), message
    assert REFUSED in message or "Python object" in message, message
    for name in names:
        assert name in message, message


def one_error_line(out: str) -> str:
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


def test_the_payload_runs_code_when_unpickled(marker):
    # what makes every test below meaningful: an ordinary unpickle of this object does write the marker
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


# --- library loaders ------------------------------------------------------------------------------
def _load_module(path: Path):
    from genlab.train.loading import load_module

    return load_module(path)


def _resume_checkpoint(path: Path):
    from genlab.train.checkpoint_io import resume_checkpoint

    return resume_checkpoint([path / "checkpoints" / "last.ckpt", path / "checkpoints" / "best.ckpt"])


def _code_maps(path: Path):
    from genlab.eval.codes import load_code_maps

    return load_code_maps(path)


LOADERS = {
    "genlab.load(run)": (lambda p: genlab.load(p), "best.ckpt"),
    "genlab.load(ckpt)": (lambda p: genlab.load(p / "checkpoints" / "last.ckpt"), "last.ckpt"),
    "Run.load_model": (lambda p: Run.open(p).load_model("last"), "last.ckpt"),
    "load_module": (_load_module, "best.ckpt"),
    "resume_checkpoint": (_resume_checkpoint, "last.ckpt"),
    "load_prior(gmm)": (lambda p: Run.open(p).load_prior("gmm"), "gmm/prior.npz"),
    "load_prior(pixelcnn)": (lambda p: Run.open(p).load_prior("pixelcnn"), "pixelcnn/prior.pt"),
    "load_aggregate_prior": (lambda p: load_aggregate_prior(Run.open(p)), "aggregate-gmm/prior.npz"),
    "load_code_maps": (_code_maps, "codes/codes.npz"),
}


@pytest.mark.parametrize("loader", LOADERS, ids=list(LOADERS))
def test_every_loader_refuses_a_planted_file_in_one_line(planted, marker, loader):
    load, name = LOADERS[loader]
    with pytest.raises(GenlabError) as err:
        load(planted)
    assert_refused(str(err.value), name)
    assert not marker.exists()


# --- the command line -----------------------------------------------------------------------------
COMMANDS = {
    "sample": (["sample", "{run}"], "best.ckpt"),
    "evaluate": (["evaluate", "{run}", "--loglik", "--n-images", "2", "--samples", "10"], "best.ckpt"),
    "traverse": (["traverse", "{run}", "--mode", "coords", "--rows", "2", "--steps", "3"], "best.ckpt"),
    "prior-eval": (["prior-eval", "{run}", "--kind", "gmm"], "best.ckpt"),
    "train --resume": (["train", "--resume", "{run}", "trainer.max_epochs=2"], "last.ckpt"),
}


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_every_command_refuses_a_planted_run_with_exit_2(planted, marker, command, capsys, tiny_data):
    argv, name = COMMANDS[command]
    assert main([a.format(run=planted) for a in argv]) == 2
    assert_refused(one_error_line(capsys.readouterr().out), name, str(planted))
    assert not marker.exists()


def test_reports_read_no_pickles(planted, marker, tmp_path, capsys):
    # `genlab report` and the study's report step read JSON, YAML and pictures only: they work and run nothing
    assert main(["report", str(planted)]) == 0
    study = tmp_path / "study"  # a study folder whose one finished stage is the planted run
    shutil.copytree(planted, study / "vae-dsprites")
    (study / "state.json").write_text(json.dumps({"profile": "tiny", "stages": {"vae-dsprites": {"status": "done"}}}))
    assert main(["study", "--report-only", "--out", str(study)]) == 0
    assert "Traceback" not in capsys.readouterr().out
    assert (planted / "report.html").is_file() and (study / "study.html").is_file() and not marker.exists()


# --- old pickled priors -----------------------------------------------------------------------------
def test_an_old_pickled_prior_is_refused_with_the_command_that_refits_it(run, tmp_path, marker):
    copy = Path(shutil.copytree(run.path, tmp_path / "old-run"))
    for kind in ("gmm", "aggregate-gmm"):
        (copy / "priors" / kind).mkdir(parents=True)
        (copy / "priors" / kind / "prior.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(GenlabError, match=r"prior\.pkl: a pickled prior .* refit it with `genlab prior .* --kind gmm`"):
        Run.open(copy).load_prior("gmm")
    with pytest.raises(GenlabError, match=r"prior\.pkl: a pickled prior .*fit_aggregate_prior"):
        load_aggregate_prior(Run.open(copy))
    assert not marker.exists()


# --- dSprites npz ---------------------------------------------------------------------------------
def official_like_npz(path: Path, metadata) -> dict[str, np.ndarray]:
    c = ds.index_to_classes(np.arange(0, ds.N_IMAGES, ds.N_IMAGES // 40))
    arrays = {"imgs": ds.render(c), "latents_classes": c, "latents_values": ds.latent_values(c)}
    np.savez(path, **arrays, metadata=metadata)
    return arrays


def test_the_dsprites_npz_is_read_without_its_pickled_metadata(tmp_path, marker):
    # the official file's metadata is a pickled dict: never read; genlab's own table stands in for it
    path = tmp_path / ds.NPZ_NAME
    arrays = official_like_npz(path, np.array(Payload(marker), dtype=object))
    z = ds.load_npz(path)
    assert np.array_equal(z["imgs"], arrays["imgs"])
    assert z["metadata"]["latents_sizes"].tolist() == list(ds.LATENT_SIZES)
    assert list(z["metadata"]["latents_possible_values"]["scale"]) == pytest.approx(np.linspace(0.5, 1, 6))
    assert len(ds.DSprites("train", source="npz", root=str(tmp_path))) == 36
    assert not marker.exists()


def test_a_dsprites_npz_with_object_images_is_refused(tmp_path, marker, capsys):
    path = tmp_path / ds.NPZ_NAME
    c = ds.index_to_classes(np.arange(40))
    np.savez(path, imgs=np.array([Payload(marker)] * 40, dtype=object), latents_classes=c,
             latents_values=ds.latent_values(c))
    with pytest.raises(GenlabError) as err:
        ds.DSprites("train", source="npz", root=str(path))
    assert_refused(str(err.value), ds.NPZ_NAME, "genlab data download dsprites")
    runs = tmp_path / "runs"
    assert main(["train", "vae-dsprites-quick", "data.source=npz", f"data.root={path}", "data.subset=null",
                 f"output.runs_dir={runs}", "trainer.accelerator=cpu"]) == 2
    assert_refused(one_error_line(capsys.readouterr().out), ds.NPZ_NAME)
    assert not marker.exists() and not runs.exists()


# --- what genlab writes still loads --------------------------------------------------------------------
@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_the_code_map_mixture_round_trips_through_arrays(tmp_path, covariance):
    g = np.random.default_rng(0)
    indices, codebook = g.integers(0, 6, (40, 4, 4)), g.standard_normal((6, 3)).astype(np.float32)
    prior = GMMPrior(components=3, pca_dim=5, covariance=covariance, seed=2).fit(indices, codebook)
    save_arrays(tmp_path / "prior.npz", *prior.to_arrays())
    back = GMMPrior.from_arrays(*load_arrays(tmp_path / "prior.npz", "prior"))
    assert back.grid == prior.grid and np.array_equal(back.codebook, prior.codebook)
    np.testing.assert_array_equal(back.gmm.precisions_cholesky_, prior.gmm.precisions_cholesky_)
    for seed in (0, 1):
        a = prior.sample(7, torch.Generator().manual_seed(seed))
        b = back.sample(7, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b) and a.shape == (7, 4, 4)
    flat = codebook[indices[:5]].reshape(5, -1)
    np.testing.assert_array_equal(back.pca.transform(flat), prior.pca.transform(flat))
    np.testing.assert_array_equal(back.gmm.score_samples(prior.pca.transform(flat)),
                                  prior.gmm.score_samples(prior.pca.transform(flat)))


def test_the_gmm_prior_of_a_run_loads_back(run, tmp_path):
    copy = Run(Path(shutil.copytree(run.path, tmp_path / "with-prior")))
    g = np.random.default_rng(1)
    prior = GMMPrior(components=2, pca_dim=3).fit(g.integers(0, 4, (20, 2, 2)), g.standard_normal((4, 2)))
    save_arrays(copy.prior_dir("gmm") / "prior.npz", *prior.to_arrays())
    loaded = copy.load_prior("gmm")
    assert torch.equal(loaded.sample(5, torch.Generator().manual_seed(3)),
                       prior.sample(5, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_the_aggregate_posterior_prior_round_trips(run, tmp_path, covariance):
    copy = Run(Path(shutil.copytree(run.path, tmp_path / "agg")))
    prior = LatentGMM(components=2, covariance=covariance, seed=4).fit(np.random.default_rng(2).standard_normal((30, 8)))
    save_arrays(prior_path(copy), *prior.to_arrays())
    back = load_aggregate_prior(copy)
    assert (back.components, back.covariance, back.fitted_on) == (2, covariance, 30)
    assert back.describe() == prior.describe()
    torch.testing.assert_close(back.sample(6, torch.Generator().manual_seed(9)),
                               prior.sample(6, torch.Generator().manual_seed(9)), rtol=0, atol=0)


def test_a_clean_run_still_resumes_and_loads(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry.BUILDERS, "dsprites", lambda cfg, split, seed: tiny_images(split))
    copy = Path(shutil.copytree(run.path, tmp_path / "resume"))
    before = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert main(["train", "--resume", str(copy), "trainer.max_epochs=2"]) == 0
    after = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["epoch"] == before + 1 and Run.open(copy).status()["status"] == "finished"
    assert genlab.load(copy).name == "vae"
