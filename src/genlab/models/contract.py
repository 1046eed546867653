"""The contract every genlab image model keeps, so sampling, grids, FID, traversals and
`genlab.load` treat all models alike. Images are float NCHW in [0, 1] at every edge; a model that
works in [-1, 1] inside (the GANs) converts with `to_unit` / `from_unit`.

    noise(n, generator=None) -> the model's input noise for n samples, on the model's device
                                 (drawn on the CPU from `generator`, so a seed gives the same noise
                                 on every device)
    sample(noise)            -> images in [0, 1]
    generate(n, seed=None)   -> sample(noise(n, seeded generator)): the notebook shorthand
    reconstruct(x)           -> images in [0, 1], where the model has an encoder (x in [0, 1])
    encode(x)                -> the model's code of x in [0, 1], where it has an encoder

Training outputs (`elbo`, `forward`) are dicts with a shared vocabulary: `loss` (what the
optimiser minimises), `reconstruction` (images), and model-specific entries.

The likelihood contract of latent-variable models (`latent_dim`, `encode(x) -> (mean, logvar)`,
`log_prior(z)`, `log_likelihood(x, z)`) is separate and documented in `genlab.eval.likelihood`.
"""

from __future__ import annotations

import torch
from torch import nn


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (tanh outputs can overshoot by rounding)."""
    return (x + 1).div(2).clamp(0, 1)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2 - 1


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without any)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def gaussian_noise(module: nn.Module, n: int, dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """(n, dim) standard normal noise drawn on the CPU (device-independent seeds), moved to `module`'s device."""
    return torch.randn(n, dim, generator=generator).to(device_of(module))


class Generative(nn.Module):
    """Base class of the image models: `generate` from `noise` and `sample`, and a
    `has_encoder` flag (True where `encode` and `reconstruct` exist)."""

    has_encoder: bool = False

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def sample(self, noise: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, n: int, seed: int | None = None) -> torch.Tensor:
        """`n` images in [0, 1]; the same `seed` gives the same images (as `genlab sample --seed`)."""
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        return self.sample(self.noise(n, g))


class LatentVariableModel(Generative):
    """A model with a standard-normal prior over `latent_dim` codes, an `encode` returning
    (mean, log-variance) of q(z|x) and a `decode` to images in [0, 1]: the VAE family's
    `noise`, `sample` and `reconstruct`, written once."""

    has_encoder = True
    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z) = N(0, I)."""
        return gaussian_noise(self, n, self.latent_dim, generator)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Mean images of p(x|z) at the given z, in [0, 1]."""
        return self.decode(noise)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded mean of q(z|x), in [0, 1]."""
        return self.decode(self.encode(x)[0])
