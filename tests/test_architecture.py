"""The layering of ARCHITECTURE.md, enforced: what each package may import, read from the source
(every `import` and `from ... import`, at any depth, lazy ones included), what importing a module
really loads (in a fresh interpreter, so what its imports pull in counts too), and a toy model added
through the registries alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genlab"

# the parts that read runs and models: none of them may need the trainer
TRAINER_FREE = ["models", "eval", "viz", "api.py", "runs.py", "runs_list.py", "checkpoints.py", "sampling.py",
                "evaluate.py", "config.py", "defaults.py", "io.py", "errors.py", "progress.py", "study/plan.py",
                "study/report.py"]
FORBIDDEN_EVERYWHERE_BUT_TRAIN = ("genlab.train", "lightning", "pytorch_lightning")
# a model is a plain nn.Module: it knows no datasets, metrics or plots either
FORBIDDEN_IN_MODELS = FORBIDDEN_EVERYWHERE_BUT_TRAIN + ("genlab.data", "genlab.eval", "genlab.viz", "genlab.runs")
# datasets sit below models and plots: a dataset preview writes its grid through genlab.io
FORBIDDEN_IN_DATA = FORBIDDEN_EVERYWHERE_BUT_TRAIN + ("genlab.models", "genlab.viz")


def imports_of(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every import in a file; relative imports resolved against `package`."""
    tree = ast.parse(path.read_text(), str(path))
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:-node.level] if parts[-1] != "__init__" else parts[:len(parts) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def files(*names: str) -> list[Path]:
    out = []
    for name in names:
        target = PACKAGE / name
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


def violations(paths: list[Path], forbidden: tuple[str, ...], package: Path = PACKAGE) -> list[str]:
    return [f"{p.relative_to(package.parent)}:{line} imports {mod}"
            for p in paths for line, mod in imports_of(p, package)
            if any(mod == f or mod.startswith(f + ".") for f in forbidden)]


def test_nothing_that_reads_runs_imports_the_trainer():
    assert violations(files(*TRAINER_FREE), FORBIDDEN_EVERYWHERE_BUT_TRAIN) == []


def test_models_import_only_torch_and_each_other():
    assert violations(files("models"), FORBIDDEN_IN_MODELS) == []


def test_datasets_know_no_models_plots_or_trainer():
    assert violations(files("data"), FORBIDDEN_IN_DATA) == []


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Imports modules in turn in one fresh interpreter, stage by stage, and reports, after each, the
# forbidden modules of its stage that are loaded now. A module that pulls one in (through any chain
# of imports, at import time) is named as the first one after which it appears; the modules before
# it are proven clean. (Lazy imports inside functions are the static check's job, above.)
LOADER = """
import importlib, json, sys
for names, forbidden in json.loads(sys.argv[1]):
    for name in names:
        importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
        if loaded:
            print(json.dumps({name: loaded[:5]}))
            sys.exit(0)
print(json.dumps({}))
"""


def loaded_in_fresh_process(*stages: tuple[list[str], tuple[str, ...]]) -> dict[str, list[str]]:
    """{first module that loads a forbidden one: the forbidden ones loaded}, or {} when all are clean."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", LOADER, json.dumps(stages)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_trainer_free_modules_and_datasets_load_clean_in_a_fresh_process():
    """Loaded for real: the datasets (first) pull in no models, plots or trainer; then `genlab.viz.report`,
    `genlab.runs_list`, every `genlab.eval.*`, `genlab.api`, ... pull in neither Lightning nor `genlab.train`."""
    data = [module_name(p) for p in files("data")]
    trainer_free = [module_name(p) for p in files(*TRAINER_FREE)]
    assert {"genlab.viz.report", "genlab.runs_list", "genlab.api", "genlab.eval.ais"} <= set(trainer_free)
    assert loaded_in_fresh_process((data, FORBIDDEN_IN_DATA), (trainer_free, FORBIDDEN_EVERYWHERE_BUT_TRAIN)) == {}


def test_the_fresh_process_check_can_fail():
    """The loader names the first module that pulls a forbidden one in (genlab.io needs genlab.errors)."""
    assert loaded_in_fresh_process((["genlab.defaults", "genlab.io", "genlab.config"], ("genlab.errors",))) \
        == {"genlab.io": ["genlab.errors"]}


def test_the_rule_catches_lazy_and_relative_imports(tmp_path):
    """The check itself can fail: imports inside a function and relative ones are found."""
    package = tmp_path / "genlab"
    fake = package / "viz" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from genlab.train.runner import train\n    import lightning as L\n"
                    "    from ..train import base\n")
    assert [m for _, m in imports_of(fake, package)] == ["genlab.train.runner", "lightning", "genlab.train"]
    assert len(violations([fake], FORBIDDEN_EVERYWHERE_BUT_TRAIN, package)) == 3


def test_no_private_name_crosses_a_module():
    """`from x import _name` or `module._name` of a genlab module, outside the module that defines it."""
    bad = []
    for path in files("."):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genlab"):
                bad += [f"{path.name}:{node.lineno} {alias.name}" for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert bad == []


# --- adding a model: a model file, a config class, a training module, one registry line each -------
def test_a_toy_model_added_through_the_registries_trains_and_loads(tmp_path):
    from typing import Literal

    from pydantic import BaseModel, ConfigDict
    from torch import nn

    import genlab
    from genlab.config import MODEL_CONFIGS, ExperimentConfig, build_config, register_model_config
    from genlab.errors import GenlabError
    from genlab.models import registry as models
    from genlab.models.contract import Generative
    from genlab.runs import Run
    from genlab.train import registry as modules
    from genlab.train.base import GenlabModule, images_of

    class ToyConfig(BaseModel):  # 1. the config class
        model_config = ConfigDict(extra="forbid")
        name: Literal["toy"] = "toy"
        level: float = 0.5

    class Toy(Generative):  # 2. the model: a constant grey image plus a learned offset
        def __init__(self, size: int, level: float) -> None:
            super().__init__()
            self.size, self.offset = size, nn.Parameter(torch.tensor(level))

        def noise(self, n, generator=None):
            return torch.rand(n, 1, generator=generator)

        def sample(self, noise):
            return (self.offset + 0 * noise).clamp(0, 1).view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size)

    class ToyModule(GenlabModule):  # 3. the training module
        def __init__(self, cfg: ExperimentConfig) -> None:
            super().__init__(cfg)
            self.net = models.build_model(cfg)

        def training_step(self, batch, batch_idx):
            return (self.net.offset - images_of(batch).mean()) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=0.1)

    try:
        register_model_config(ToyConfig)  # 4. one line per registry
        models.register_model("toy", lambda cfg: Toy(cfg.data.image_size, cfg.model.level),
                              monitor=("train/loss", "min"))
        modules.register_module("toy", ToyModule)

        cfg = build_config({"name": "toy", "model": {"name": "toy", "level": 0.25}, "data": {"image_size": 8},
                            "output": {"runs_dir": str(tmp_path), "run_name": "toy"}})
        assert isinstance(cfg.model, ToyConfig) and cfg.model.level == 0.25
        with pytest.raises(GenlabError, match="unknown key 'model.levle'"):
            build_config({"model": {"name": "toy", "levle": 1}})
        run = Run.create(cfg)
        module = modules.build_module(cfg)
        module.net.offset.data.fill_(0.75)
        torch.save({"state_dict": module.state_dict(), "genlab": {"format": 2, "version": "x", "model": "toy"},
                    "hyper_parameters": {"config": cfg.to_dict()}}, run.best_checkpoint)
        loaded = genlab.load(run.path)
        assert torch.allclose(loaded.generate(2, seed=0), torch.full((2, 1, 8, 8), 0.75))
    finally:
        if ToyConfig in MODEL_CONFIGS:
            MODEL_CONFIGS.remove(ToyConfig)
        models.MODELS.pop("toy", None)
        models.MONITORS.pop("toy", None)
        modules.MODULES.pop("toy", None)
        register_model_config(MODEL_CONFIGS[0])  # rebuild the schema without the toy
    with pytest.raises(GenlabError, match="toy"):
        build_config({"model": {"name": "toy"}})
