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
