"""`trainer.precision: auto` / `trainer.channels_last: auto` (genlab.train.speed): what they resolve to
on a CPU with and without native bf16, on a GPU, and what a run then actually trains with."""

from __future__ import annotations

import pytest
import torch

from genlab.config import load_config
from genlab.errors import GenlabError
from genlab.train import speed
from genlab.train.registry import build_module


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16, whatever this machine has."""

    def set_to(native: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)

    return set_to


def test_auto_picks_bf16_and_channels_last_only_on_a_cpu_with_native_bf16(bf16_cpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bf16_cpu(True)
    assert speed.resolve_precision("auto", "cpu") == "bf16-mixed"
    assert speed.resolve_precision("auto", "auto") == "bf16-mixed"
    assert speed.resolve_channels_last("auto", "cpu") is True
    bf16_cpu(False)
    assert speed.resolve_precision("auto", "cpu") == "32-true"
    assert speed.resolve_channels_last("auto", "auto") is False


def test_auto_on_a_gpu_stays_float32(bf16_cpu, monkeypatch):
    bf16_cpu(True)  # a bf16 host CPU does not matter when the model trains on the GPU
    assert speed.resolve_precision("auto", "gpu") == "32-true"
    assert speed.resolve_channels_last("auto", "cuda") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert speed.resolve_precision("auto", "auto") == "32-true"


def test_explicit_settings_are_kept(bf16_cpu):
    bf16_cpu(True)
    assert speed.resolve_precision("32-true", "cpu") == "32-true"
    assert speed.resolve_precision("16-mixed", "gpu") == "16-mixed"
    assert speed.resolve_channels_last(False, "cpu") is False
    bf16_cpu(False)
    assert speed.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert speed.resolve_channels_last(True, "cpu") is True


def test_the_config_defaults_to_auto_and_rejects_other_words():
    cfg = load_config("dcgan-bitmoji")
    assert (cfg.trainer.precision, cfg.trainer.channels_last) == ("auto", "auto")
    assert load_config("dcgan-bitmoji", ["trainer.channels_last=false"]).trainer.channels_last is False
    with pytest.raises(GenlabError, match="trainer.channels_last: use true, false or auto"):
        load_config("dcgan-bitmoji", ["trainer.channels_last=sometimes"])


@pytest.mark.parametrize("native", [True, False])
def test_the_built_model_has_the_layout_auto_chose(native, bf16_cpu, tiny_cfg):
    bf16_cpu(native)
    module = build_module(tiny_cfg())  # trainer.accelerator=cpu, channels_last auto
    # a weight with one input channel or a 1x1 kernel is contiguous in both layouts: left out
    convs = [k for k, v in module.state_dict().items() if v.dim() == 4 and v.shape[1] > 1 and v.shape[2] > 1]
    assert convs
    assert all(module.state_dict()[k].is_contiguous(memory_format=torch.channels_last) == native for k in convs)


def test_a_run_reports_and_uses_the_resolved_precision(bf16_cpu, tiny_cfg, capsys):
    from genlab.train.runner import train

    bf16_cpu(True)
    run = train(tiny_cfg("trainer.max_steps=2", "trainer.max_epochs=1"))
    header = capsys.readouterr().out
    assert "precision bf16-mixed (auto), channels_last" in " ".join(header.split())
    assert (run.path / "checkpoints" / "last.ckpt").is_file()
