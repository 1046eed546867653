import pytest

from genlab.config import (
    PACKAGE_CONFIGS,
    ExperimentConfig,
    dump_config,
    load_config,
    parse_overrides,
)
from genlab.errors import GenlabError


def test_bundled_configs_all_validate():
    names = sorted(p.stem for p in PACKAGE_CONFIGS.glob("*.yaml"))
    assert {"vae-dsprites", "vae-dsprites-quick", "vae-celeba"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), ExperimentConfig)


def test_study_settings_for_the_dsprites_vae():
    cfg = load_config("vae-dsprites")
    assert cfg.model.channels == [32, 64, 128, 256, 512]
    assert cfg.model.latent_dim == 128
    assert cfg.data.batch_size == 128
    assert cfg.optimizer.lr == 1e-3 and tuple(cfg.optimizer.betas) == (0.9, 0.999)  # Adam defaults


def test_overrides_are_typed_and_nested():
    cfg = load_config("vae-dsprites", ["model.beta=4", "trainer.max_epochs=2", "model.channels=[8,16]"])
    assert cfg.model.beta == 4.0 and cfg.trainer.max_epochs == 2 and cfg.model.channels == [8, 16]
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}


@pytest.mark.parametrize("override, fragment", [
    ("model.latnt_dim=3", "unknown key 'model.latnt_dim'"),
    ("trainer.max_epochs=0", "'trainer.max_epochs'"),
    ("data.name=mnist", "'data.name'"),
    ("model.likelihood=poisson", "'model.likelihood'"),
    ("nonsense=1", "unknown key 'nonsense'"),
])
def test_bad_keys_and_values_are_one_line_errors_naming_the_key(override, fragment):
    with pytest.raises(GenlabError) as err:
        load_config("vae-dsprites", [override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_override_and_missing_file():
    with pytest.raises(GenlabError, match="key=value"):
        load_config(None, ["trainer.max_epochs"])
    with pytest.raises(GenlabError, match="config file not found"):
        load_config("no/such/config.yaml")


def test_config_round_trips_through_yaml(tmp_path):
    cfg = load_config("vae-celeba", ["model.beta=2"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_the_prior_comparison_and_gan_training_share_one_fid_section(tmp_path):
    """`model.priors.fid` and `model.fid` are the same extractor settings (the GAN's adds its schedule);
    a config written before the merge (`model.priors.fid_extractor`, ...) still loads, with a note."""
    from genlab.config import FIDConfig, GANFIDConfig

    vq = load_config("vqvae-tinyimagenet-quick")
    gan = load_config("dcgan-bitmoji-quick")
    assert type(vq.model.priors.fid) is FIDConfig and isinstance(gan.model.fid, FIDConfig)
    assert issubclass(GANFIDConfig, FIDConfig)
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  name: vqvae\n  priors:\n    fid_extractor: fallback\n    fid_dims: 64\n"
                   "    fid_weights: w.pth\n")
    with pytest.warns(FutureWarning, match=r"model\.priors\.fid_dims is deprecated; write model\.priors\.fid\.dims"):
        cfg = load_config(old)
        assert load_config(old, ["model.priors.fid.dims=192"]).model.priors.fid.dims == 192  # the new key wins
    assert (cfg.model.priors.fid.extractor, cfg.model.priors.fid.dims, cfg.model.priors.fid.weights) == \
        ("fallback", 64, "w.pth")
    assert "fid_dims" not in dump_config(cfg)
    for bad in ("model.priors.fid.dims=100", "model.fid.dims=100"):
        with pytest.raises(GenlabError, match=r"fid\.dims.*one of \[64, 192, 768, 2048\]"):
            load_config("vqvae-tinyimagenet-quick" if "priors" in bad else "dcgan-bitmoji-quick", [bad])


def test_shared_defaults_come_from_one_table():
    """The config schema, the library and the CLI read the IS count, the estimator names and the FID
    extractor's settings from genlab.defaults."""
    import inspect

    from genlab import api, defaults
    from genlab.cli import build_parser
    from genlab.eval import fid, gan_quality, importance, likelihood

    cfg = ExperimentConfig()
    assert cfg.eval.samples == defaults.LOGLIK["samples"] == \
        inspect.signature(importance.importance_sampling).parameters["n_samples"].default == \
        inspect.signature(likelihood.loglik_table).parameters["samples"].default == \
        inspect.signature(api.TrainedModel.log_px).parameters["samples"].default
    assert likelihood.ESTIMATORS == defaults.ESTIMATORS
    assert inspect.signature(gan_quality.evaluate_gan_quality).parameters["dims"].default == defaults.FID["dims"]
    assert inspect.signature(fid.fid_cli).parameters["batch_size"].default == defaults.FID["batch_size"]
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]  # type: ignore[union-attr]
    choices = {a.dest: a.choices for a in evaluate._actions}
    assert tuple(choices["estimator"]) == (*defaults.ESTIMATORS, "all")
    assert tuple(choices["checkpoint"]) == defaults.CHECKPOINTS
    with pytest.raises(GenlabError, match="'eval.estimators'.*unknown estimator 'iss'"):
        load_config(None, ["eval.estimators=[iss]"])
