"""One typed schema for every experiment: YAML files, dotted overrides, validation.

Defaults live here and only here (those a library function or a CLI option shares with a config
field come from `genlab.defaults`); the CLI and the Python API both go through `load_config`,
so they cannot drift apart. A model section is chosen by its `name` (a discriminated union),
so each model brings its own options and an unknown key is an error naming the key.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from genlab.defaults import ESTIMATORS, FID, FID_DIMS, LOGLIK
from genlab.errors import GenlabError

PACKAGE_CONFIGS = Path(__file__).parent / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# which FID feature network: auto = Inception when its weights are found, else the fallback
# (genlab.eval.features.choose_extractor, the one place the rule lives)
ExtractorChoice = Literal["auto", "inception", "fallback"]


# --- models -------------------------------------------------------------------------------------
class VAEConfig(_Section):
    """The study's convolutional VAE."""

    name: Literal["vae"] = "vae"
    latent_dim: int = Field(128, gt=0)
    channels: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 512], min_length=1)
    likelihood: Literal["gaussian", "bernoulli"] = "gaussian"
    sigma: float = Field(0.1, gt=0, description="std of the Gaussian likelihood (the study's MSE)")
    beta: float = Field(1.0, ge=0, description="KL weight in the training loss; the reported ELBO is always true")
    sample_prior: Literal["standard", "aggregate-gmm"] = Field(
        "standard", description="what `genlab demo`'s final samples come from: N(0, I), or a Gaussian mixture "
        "fitted to the training posterior means after training (genlab.eval.aggregate_prior); the model, its "
        "ELBO and its likelihoods always use N(0, I)")
    prior_components: int = Field(10, gt=0, description="aggregate-gmm: mixture components (full covariance)")
    prior_images: int = Field(20000, gt=0, description="aggregate-gmm: training images it is fitted on (at most)")

    def image_size_problem(self, size: int) -> str | None:
        """Why the network cannot take `size`-pixel images, or None (checked with the data section)."""
        factor = 2 ** len(self.channels)
        if size % factor:
            return (f"the VAE's {len(self.channels)} stride-2 convolutions (model.channels) need a multiple of "
                    f"{factor}, e.g. {max(factor, 64 // factor * factor)}")
        return None


class FIDConfig(_Section):
    """The FID/KID feature extractor (genlab.eval.features): one section for GAN training's FID
    (`model.fid`, which adds its schedule) and the VQ-VAE prior comparison (`model.priors.fid`)."""

    extractor: ExtractorChoice = Field(
        "auto", description="auto = Inception weights when found, else the fallback (NOT comparable to published FIDs)")
    weights: Optional[str] = Field(None, description="pt_inception-2015-12-05-6726825d.pth; None = "
                                   "$GENLAB_FID_WEIGHTS or the torch hub cache")
    dims: int = Field(FID["dims"], description=f"Inception feature block for FD/KID, one of {list(FID_DIMS)} "
                      "(2048 = the standard FID)")
    batch_size: int = Field(FID["batch_size"], gt=0, description="images per extractor batch")
    kid_subset_size: Optional[int] = Field(None, gt=1, description="None = min(1000, N/2)")

    @field_validator("dims")
    @classmethod
    def _a_feature_block(cls, v: int) -> int:
        if v not in FID_DIMS:
            raise ValueError(f"Inception feature dims must be one of {list(FID_DIMS)}")
        return v


class GANFIDConfig(FIDConfig):
    """FID/KID during GAN training (genlab.train.fid_callback); real statistics are cached."""

    every_n_epochs: int = Field(1, ge=0, description="0 = no FID during training (best.ckpt then = last)")
    n: int = Field(1000, gt=1, description="generated and real images per epoch (the study: 1000 vs 1000)")
    final_n: int = Field(1000, ge=0, description="generated images for the final evaluation of best.ckpt; "
                         "real ones: min(final_n, training images); 0 = skip")
    seed: int = Field(FID["seed"], ge=0, le=2**32 - 1, description="numpy and Lightning take seeds in 0 .. 2^32-1")


class GANConfig(_Section):
    """DCGAN (BCE), LSGAN (least squares, no sigmoid) and BiGAN (+ encoder, joint D(x, z))."""

    name: Literal["dcgan", "lsgan", "bigan"] = "dcgan"
    latent_dim: int = Field(100, gt=0)
    g_width: int = Field(64, gt=0, description="generator channels at the last layer (DCGAN's ngf)")
    d_width: int = Field(64, gt=0, description="discriminator / encoder channels at the first layer (ndf)")
    d_steps: int = Field(1, gt=0, description="discriminator steps per generator step")
    ema: Optional[float] = Field(None, gt=0, lt=1, description="decay of an EMA generator used for sampling "
                                 "and FID (e.g. 0.999); None = off")
    diffaugment: str = Field("", description="DiffAugment policy, e.g. 'color,translation,cutout'; '' = off")
    d_batch_norm: bool = Field(True, description="BatchNorm in the discriminator (DCGAN's rule); false for the "
                               "least-squares loss, which draws noise with it (dcgan and lsgan only)")
    fid: GANFIDConfig = Field(default_factory=GANFIDConfig)

    def image_size_problem(self, size: int) -> str | None:
        if size < 8 or size & (size - 1):
            return "the DCGAN networks double the size from 4x4, so it must be a power of two >= 8 (e.g. 64)"
        return None

    @model_validator(mode="after")
    def _batch_norm_choice(self) -> "GANConfig":
        if self.name == "bigan" and not self.d_batch_norm:
            raise ValueError("model.d_batch_norm=false is for dcgan and lsgan; the BiGAN's joint "
                             "discriminator keeps its BatchNorm (set model.d_batch_norm=true)")
        return self


class GMMPriorConfig(_Section):
    """The study's prior: a Gaussian mixture on PCA-reduced flattened code embeddings."""

    components: int = Field(100, gt=0)
    pca_dim: int = Field(64, gt=0, description="PCA dimensions the mixture is fitted in")
    covariance: Literal["diag", "full"] = "diag"


class CodeVAEPriorConfig(_Section):
    """The study's small VAE over code maps, with a categorical likelihood over codes."""

    latent_dim: int = Field(64, gt=0)
    hidden: int = Field(64, gt=0)
    embed_dim: int = Field(32, gt=0)
    epochs: int = Field(20, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, gt=0)


class PixelCNNPriorConfig(_Section):
    """A gated PixelCNN over code indices (the original VQ-VAE paper's prior)."""

    hidden: int = Field(64, gt=0)
    layers: int = Field(8, gt=0)
    epochs: int = Field(10, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, gt=0)


class PriorsConfig(_Section):
    gmm: GMMPriorConfig = Field(default_factory=GMMPriorConfig)
    vae: CodeVAEPriorConfig = Field(default_factory=CodeVAEPriorConfig)
    pixelcnn: PixelCNNPriorConfig = Field(default_factory=PixelCNNPriorConfig)
    eval_samples: int = Field(1000, gt=2, description="decoded samples per prior for FD/KID (and real images)")
    fid: FIDConfig = Field(default_factory=FIDConfig)

    @model_validator(mode="before")
    @classmethod
    def _old_fid_keys(cls, data: Any) -> Any:
        """Before the FID section was shared: `fid_extractor`, `fid_weights`, `fid_dims` (still read)."""
        if not isinstance(data, dict) or not any(k in data for k in OLD_PRIOR_FID_KEYS):
            return data
        data = dict(data)
        fid = dict(data.get("fid") or {})
        renamed = [(old, new) for old, new in OLD_PRIOR_FID_KEYS.items() if old in data]
        for old, new in renamed:
            fid.setdefault(new, data.pop(old))
        data["fid"] = fid
        warnings.warn("config: " + ", ".join(f"model.priors.{old} is deprecated; write model.priors.fid.{new}"
                                             for old, new in renamed), FutureWarning, stacklevel=2)
        return data


OLD_PRIOR_FID_KEYS = {"fid_extractor": "extractor", "fid_weights": "weights", "fid_dims": "dims"}


class VQVAEConfig(_Section):
    """The VQ-VAE: 64x64 images -> a 32x32 map of codes from a codebook of K entries."""

    name: Literal["vqvae"] = "vqvae"
    num_codes: int = Field(512, gt=1, le=65536, description="K; indices are stored as uint16")
    code_dim: int = Field(64, gt=0, description="D, the dimension of each code vector")
    hidden: int = Field(128, gt=0, description="channels of the encoder/decoder at 32x32")
    res_hidden: int = Field(32, gt=0)
    res_blocks: int = Field(2, ge=0)
    beta: float = Field(0.25, ge=0, description="commitment weight")
    codebook: Literal["ema", "loss"] = Field("ema", description="how the codebook learns")
    decay: float = Field(0.99, gt=0, lt=1, description="EMA decay (codebook and usage counts)")
    init: Literal["kmeans", "data", "uniform"] = Field("kmeans", description="codebook initialisation")
    restart_threshold: float = Field(1.0, ge=0, description="restart codes picked fewer times per batch "
                                     "(running average) than this; 0 = never")
    sweep_codes: list[int] = Field(default_factory=lambda: [128, 256, 512], min_length=1,
                                   description="the codebook sizes `genlab vqvae-sweep` trains")
    priors: PriorsConfig = Field(default_factory=PriorsConfig)

    def image_size_problem(self, size: int) -> str | None:
        if size % 2:
            return "the VQ-VAE halves the image once (one stride-2 convolution), so it must be even (e.g. 64)"
        return None


class DisentangleConfig(_Section):
    """What the disentangling VAEs share: the network of Locatello et al. 2019 (genlab.models.disentangle)
    with a Bernoulli likelihood, and its latent size."""

    latent_dim: int = Field(10, gt=0)

    def image_size_problem(self, size: int) -> str | None:
        if size < 16 or size % 16:
            return "the network's 4 stride-2 convolutions need a multiple of 16 (e.g. 64, dSprites' size)"
        return None


class BetaVAEConfig(DisentangleConfig):
    """beta-VAE (Higgins et al. 2017); beta = 1 is the plain VAE."""

    name: Literal["betavae"] = "betavae"
    beta: float = Field(1.0, ge=0, description="KL weight in the training loss; val/elbo is always the true ELBO")


class BetaTCVAEConfig(DisentangleConfig):
    """beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation and dimension-wise KL."""

    name: Literal["btcvae"] = "btcvae"
    alpha: float = Field(1.0, ge=0, description="weight of the index-code mutual information")
    beta: float = Field(6.0, ge=0, description="weight of the total correlation")
    gamma: float = Field(1.0, ge=0, description="weight of the dimension-wise KL")
    dataset_size: Optional[int] = Field(None, gt=1, description="N of minibatch-stratified sampling; None = the "
                                        "size of the training split")


class FactorVAEConfig(DisentangleConfig):
    """FactorVAE (Kim & Mnih 2018): gamma times a discriminator's total-correlation estimate on top of the ELBO."""

    name: Literal["factorvae"] = "factorvae"
    gamma: float = Field(35.0, ge=0, description="weight of the total correlation")
    disc_hidden: int = Field(1000, gt=0, description="discriminator width (the paper: 1000)")
    disc_layers: int = Field(6, gt=0, description="discriminator hidden layers (the paper: 6)")
    disc_lr: float = Field(1e-4, gt=0, description="the discriminator's Adam learning rate (the paper: 1e-4)")
    disc_betas: tuple[float, float] = Field((0.5, 0.9), description="the discriminator's Adam betas (the paper)")


# The model sections the schema accepts, chosen by `model.name`; `register_model_config` adds one.
MODEL_CONFIGS: list[type[BaseModel]] = [VAEConfig, GANConfig, VQVAEConfig, BetaVAEConfig, BetaTCVAEConfig, FactorVAEConfig]
ModelConfig = Annotated[Union[VAEConfig, GANConfig, VQVAEConfig, BetaVAEConfig, BetaTCVAEConfig, FactorVAEConfig],
                        Field(discriminator="name")]


def model_names() -> list[str]:
    """The `model.name` values the schema accepts (dcgan, lsgan, bigan share one class)."""
    return [name for m in MODEL_CONFIGS for name in get_args(m.model_fields["name"].annotation)]


# --- the rest -----------------------------------------------------------------------------------
class DataConfig(_Section):
    name: Literal["dsprites", "celeba", "tinyimagenet", "bitmoji", "folder"] = "dsprites"
    root: Optional[str] = Field(None, description="dataset folder or file; None = built-in / default location")
    source: Literal["render", "npz"] = Field("render", description="dSprites: render it, or read the official npz")
    image_size: int = Field(64, gt=0)
    channels: int = Field(1, gt=0)
    subset: Optional[int] = Field(None, gt=0, description="use a deterministic random subset of this many images")
    holdout: int = Field(0, ge=0, description="image datasets: a fixed, seeded set of this many images kept out "
                         "of training and validation (split 'holdout', scored by genlab.eval.gan_quality)")
    val_fraction: float = Field(0.1, gt=0, lt=1)
    batch_size: int = Field(128, gt=0)
    num_workers: int = Field(0, ge=0)
    crop: float = Field(1.0, gt=0, le=1, description="image datasets: side of the centre square crop as a "
                        "fraction of the shorter side (CelebA's usual 148/178 = 0.8315), then resize")
    cache: bool = Field(False, description="image datasets: decode once into a memory-mapped uint8 cache "
                        "(genlab.io.cache_dir('images')), rebuilt when the files or the transform change")
    skip_corrupt: bool = Field(False, description="image datasets: skip unreadable images (count reported) "
                               "instead of stopping at the first")
    on_device: bool = Field(False, description="keep the dataset on the training device (dSprites' packed bits, "
                            "an image dataset's uint8 cache: needs data.cache=true) and decode each batch there; "
                            "the same batches in the same order as the loader path")

    @field_validator("channels")
    @classmethod
    def _image_channels(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("name", "dsprites") != "dsprites" and v not in (1, 3):
            raise ValueError("image datasets give 1 (grey) or 3 (RGB) channels")
        return v


class OptimizerConfig(_Section):
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class TrainerConfig(_Section):
    max_epochs: int = Field(30, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1 = no step limit")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy and Lightning take seeds in 0 .. 2^32-1")
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    num_nodes: int = Field(1, gt=0)
    strategy: str = Field("auto", description="auto = DDP when devices * num_nodes > 1")
    precision: str = Field("auto", description="Lightning precision: 32-true, bf16-mixed (autocast), 16-mixed, or "
                           "auto = bf16-mixed on a CPU with native bf16, else 32-true (genlab.train.speed)")
    channels_last: Union[bool, Literal["auto"]] = Field(
        "auto", description="the model's 4-d weights in channels_last layout (convolutions then run NHWC; helps bf16 "
        "on CPUs and tensor-core GPUs); auto = true where precision auto picks bf16")
    compile: bool = Field(False, description="torch.compile the model's sub-networks (needs a C++ compiler on CPU, "
                          "triton on CUDA); checkpoints are unchanged")
    limit_train_batches: Union[int, float] = 1.0
    limit_val_batches: Union[int, float] = 1.0
    log_every_n_steps: int = Field(10, gt=0)
    progress_bar: bool = True

    @field_validator("channels_last", mode="before")
    @classmethod
    def _layout_choice(cls, v: Any) -> Any:
        if isinstance(v, bool) or v == "auto":
            return v
        raise ValueError("trainer.channels_last: use true, false or auto")


class EvalConfig(_Section):
    n_images: int = Field(LOGLIK["n_images"], gt=0)
    samples: int = Field(LOGLIK["samples"], gt=0, description="importance samples per image (see genlab.defaults)")
    estimators: list[str] = Field(default_factory=lambda: ["is"], description=f"any of {list(ESTIMATORS)}")
    appendix_d: dict[str, Any] = Field(default_factory=dict, description="options of eval.appendix_d (e.g. n_samples)")
    ais: dict[str, Any] = Field(default_factory=dict, description="options of eval.ais (e.g. n_intermediate)")

    @field_validator("estimators")
    @classmethod
    def _known_estimators(cls, v: list[str]) -> list[str]:
        unknown = [name for name in v if name not in ESTIMATORS]
        if unknown:
            raise ValueError(f"unknown estimator {unknown[0]!r}; use any of {list(ESTIMATORS)}")
        return v


class OutputConfig(_Section):
    runs_dir: str = "runs"
    run_name: Optional[str] = Field(None, description="None = <experiment name>-<timestamp>")
    grid_every_n_epochs: int = Field(1, gt=0)
    tensorboard: bool = Field(True, description="also log to TensorBoard in RUN/tensorboard/ (needs the "
                              "tensorboard package; `tensorboard --logdir runs` shows every run)")


class ExperimentConfig(_Section):
    name: str = "experiment"
    model: ModelConfig = Field(default_factory=VAEConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _image_size_fits_the_model(self) -> "ExperimentConfig":
        # a model section may say which image sizes its network takes (`image_size_problem`)
        check = getattr(self.model, "image_size_problem", None)
        problem = check(self.data.image_size) if check is not None else None
        if problem:
            raise ValueError(f"data.image_size={self.data.image_size} does not fit model {self.model.name!r}: "
                             f"{problem}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def register_model_config(cls: type[BaseModel]) -> type[BaseModel]:
    """Add a model section to the schema: a pydantic model with a `name: Literal[...]` field
    (the value(s) `model.name` takes). Usable as a class decorator."""
    names = get_args(cls.model_fields["name"].annotation) if "name" in cls.model_fields else ()
    if not names:
        raise TypeError(f"{cls.__name__} needs a `name: Literal[...]` field to be chosen by model.name")
    taken = set(names) & set(model_names())
    if taken and cls not in MODEL_CONFIGS:
        raise ValueError(f"model name(s) {sorted(taken)} already registered")
    if cls not in MODEL_CONFIGS:
        MODEL_CONFIGS.append(cls)
    # the discriminator stays on the field; only the union of members grows
    ExperimentConfig.model_fields["model"].annotation = Union[tuple(MODEL_CONFIGS)]  # type: ignore[assignment]
    ExperimentConfig.model_rebuild(force=True)
    return cls


# --- loading ------------------------------------------------------------------------------------
def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a bundled config (`vae-dsprites-quick`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = PACKAGE_CONFIGS / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and bundled.is_file() and len(path.parts) <= 2:
        return bundled
    known = ", ".join(sorted(p.stem for p in PACKAGE_CONFIGS.glob("*.yaml")))
    raise GenlabError(f"config file not found: {name_or_path} (bundled configs: {known})")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`["model.beta=4", "trainer.max_epochs=2"]` -> nested dict; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise GenlabError(f"override {item!r} is not of the form key=value (e.g. trainer.max_epochs=2)")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GenlabError(f"override {item!r} conflicts with an earlier one")
        node[parts[-1]] = value
    return nested


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` laid over `base`, nested dicts merged key by key (neither is modified)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(cfg: ExperimentConfig, overrides: list[str], source: str = "config + overrides") -> ExperimentConfig:
    """`cfg` with dotted `key=value` overrides applied, validated again."""
    return build_config(merge_dicts(cfg.to_dict(), parse_overrides(overrides)), source)


def build_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    model = data.get("model")
    if isinstance(model, dict) and "name" not in model:
        data = {**data, "model": {"name": model_names()[0], **model}}
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise GenlabError(_one_line(exc, source)) from None


def _one_line(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    parts = [str(p) for p in err["loc"]]
    if parts[:1] == ["model"] and len(parts) > 1 and parts[1] in model_names():
        del parts[1]  # pydantic puts the union's tag in the location; users never write it
    loc = ".".join(parts)
    if not loc:  # a check across sections (ExperimentConfig's validators): its message names the keys
        msg = f"{source}: {err['msg'].removeprefix('Value error, ')}"
    elif err["type"] == "extra_forbidden":
        msg = f"{source}: unknown key '{loc}'"
    else:
        msg = f"{source}: bad value for '{loc}': {err['msg']} (got {err.get('input')!r})"
    more = len(exc.errors()) - 1
    return msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (or start from the defaults), apply dotted overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        resolved = resolve_config_path(path)
        source = str(resolved)
        try:
            data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise GenlabError(f"{resolved}: not a text file (not UTF-8); a config is a YAML file, "
                              "e.g. configs/vae-dsprites-quick.yaml") from None
        except OSError as exc:
            raise GenlabError(f"{resolved}: cannot read the config ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise GenlabError(f"{resolved}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(data, dict):
            raise GenlabError(f"{resolved}: expected a mapping at the top level")
    if overrides:
        data = merge_dicts(data, parse_overrides(overrides))
        source += " + overrides"
    return build_config(data, source)


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
