"""The disentangling VAEs of Locatello et al. 2019 as plain nn.Modules: beta-VAE, beta-TCVAE and FactorVAE.

All three share one network (Locatello et al. 2019, Table 1, after Higgins et al. 2017):
  encoder  4x4 stride-2 convs 32-32-64-64 + ReLU, flatten, dense 256 + ReLU, mean and log-variance heads
  decoder  dense 256 + ReLU, dense 1024 + ReLU -> 64x4x4, 4x4 stride-2 transposed convs 64-32-32-1
           (ReLU between them), Bernoulli logits
and the likelihood contract of `genlab.models.vae.ConvVAE` (`encode`, `decode`, `log_prior`,
`log_likelihood`, `elbo`), so the estimators of `genlab evaluate --loglik` score them unchanged.

What differs is only the training objective, `objective(x, ...)`: its `loss` weights terms, while
`elbo`, `log_likelihood` and `kl` in its output are always the true (beta = 1) one-sample values.
  beta-VAE    -(log p(x|z) - beta KL)                                     (Higgins et al. 2017)
  beta-TCVAE  -(log p(x|z) - alpha MI - beta TC - gamma dimKL), the KL split by minibatch-stratified
              sampling of log q(z) (Chen et al. 2018, eq. 2 and appendix C.2); needs the dataset size N
  FactorVAE   -(log p(x|z) - KL) + gamma TC, TC = E log D(z) / (1 - D(z)) from a discriminator between
              codes and dimension-permuted codes (Kim & Mnih 2018), trained by its own optimiser
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import LatentVariableModel
from genlab.models.distributions import kl_diag_to_standard, log_normal_diag, log_standard_normal
from genlab.models.vae import at_least_float32

HIDDEN = 256      # the dense layer of encoder and decoder (Locatello et al. 2019)
TOP_CHANNELS = 64  # channels of the 4x4 map between the dense layers and the convolutions


class LocatelloEncoder(nn.Module):
    def __init__(self, in_channels: int, image_size: int, latent_dim: int) -> None:
        super().__init__()
        grid = image_size // 16
        widths = (in_channels, 32, 32, 64, TOP_CHANNELS)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers, nn.Flatten(), nn.Linear(TOP_CHANNELS * grid * grid, HIDDEN), nn.ReLU())
        self.mean = nn.Linear(HIDDEN, latent_dim)
        self.logvar = nn.Linear(HIDDEN, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x)
        return self.mean(h), self.logvar(h)


class LocatelloDecoder(nn.Module):
    def __init__(self, in_channels: int, image_size: int, latent_dim: int) -> None:
        super().__init__()
        self.grid = image_size // 16
        self.dense = nn.Sequential(nn.Linear(latent_dim, HIDDEN), nn.ReLU(),
                                   nn.Linear(HIDDEN, TOP_CHANNELS * self.grid * self.grid), nn.ReLU())
        widths = (TOP_CHANNELS, 64, 32, 32, in_channels)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.deconvs = nn.Sequential(*layers[:-1])  # logits: no ReLU after the last

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.dense(z).view(-1, TOP_CHANNELS, self.grid, self.grid))


class DisentanglingVAE(LatentVariableModel):
    """The shared network and contract; `objective` is the true negative ELBO (a plain VAE)."""

    likelihood = "bernoulli"  # binary images (dSprites); the estimators read it (units, simulation)

    def __init__(self, in_channels: int = 1, image_size: int = 64, latent_dim: int = 10) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size {image_size} must be divisible by 16 (four stride-2 convolutions)")
        self.in_channels, self.image_size, self.latent_dim = in_channels, image_size, latent_dim
        self.encoder = LocatelloEncoder(in_channels, image_size, latent_dim)
        self.decoder = LocatelloDecoder(in_channels, image_size, latent_dim)

    # --- the likelihood contract (genlab.eval.likelihood) ----------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x|z); z may carry leading sample dims (S, B, d)."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.view(*lead, self.in_channels, self.image_size, self.image_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z), in [0, 1]."""
        return torch.sigmoid(at_least_float32(self.decode_logits(z)))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return log_standard_normal(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.log_likelihood_from_logits(x, self.decode_logits(z))

    @staticmethod
    def log_likelihood_from_logits(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log Bernoulli(x; sigmoid(logits)) summed over (C, H, W), from the logits (no clamping)."""
        logits = at_least_float32(logits)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(-3).sum(-1)

    # --- training ---------------------------------------------------------------------------------
    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One posterior sample per image and the true ELBO's terms: mean, logvar, z, reconstruction
        (probabilities), log_likelihood, kl (closed form) and elbo, per image, in nats."""
        mean, logvar = (at_least_float32(t) for t in self.encode(x))  # float32 KL under bf16 autocast
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        logits = self.decode_logits(z)
        rec = self.log_likelihood_from_logits(x, logits)
        kl = kl_diag_to_standard(mean, logvar)
        return {"mean": mean, "logvar": logvar, "z": z, "reconstruction": torch.sigmoid(at_least_float32(logits)),
                "log_likelihood": rec, "kl": kl, "elbo": rec - kl}

    def elbo(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """The one-sample ELBO per image, as ConvVAE.elbo: only `loss` depends on beta."""
        out = self.terms(x)
        out["loss"] = -(out["log_likelihood"] - beta * out["kl"]).mean()
        return out

    def objective(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What training minimises (`loss`) with the true ELBO's terms beside it."""
        return self.elbo(x)


class BetaVAE(DisentanglingVAE):
    """beta-VAE (Higgins et al. 2017): beta on the KL; beta = 1 is the plain VAE."""

    def __init__(self, in_channels: int = 1, image_size: int = 64, latent_dim: int = 10, beta: float = 1.0) -> None:
        super().__init__(in_channels, image_size, latent_dim)
        self.beta = float(beta)

    def objective(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.elbo(x, self.beta)


# --- beta-TCVAE ---------------------------------------------------------------------------------
def log_stratified_weights(batch: int, dataset_size: int, device: torch.device | None = None) -> torch.Tensor:
    """log w[i, j] of minibatch-stratified sampling (Chen et al. 2018, appendix C.2): row i estimates
    q(z_i) = sum_j w[i, j] q(z_i | x_j) from a batch of M + 1 = `batch` images out of N = `dataset_size`:
    1/N on x_i itself, (N - M) / (N M) on one other image (the stratum that stands for the rest of the
    dataset; here x_{i+1 mod batch}), 1/M on the remaining M - 1. Every row sums to 1 (the reference
    code puts the stratum weight twice in one row and nowhere in another; here each row gets one)."""
    if batch == 1:  # a last batch of one image: its own posterior is all there is
        return torch.zeros(1, 1, device=device)
    if dataset_size < batch:
        raise ValueError(f"dataset size {dataset_size} is smaller than the batch ({batch})")
    n, m = float(dataset_size), float(batch - 1)
    w = torch.full((batch, batch), 1 / m, dtype=torch.float64)
    idx = torch.arange(batch)
    w[idx, (idx + 1) % batch] = (n - m) / (n * m)
    w[idx, idx] = 1 / n
    return w.log().float().to(device)


def kl_decomposition(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                     dataset_size: int) -> dict[str, torch.Tensor]:
    """Per image i, with z_i ~ q(z|x_i): index-code MI = log q(z_i|x_i) - log q(z_i), total correlation
    TC = log q(z_i) - sum_d log q(z_id), dimension-wise KL = sum_d log q(z_id) - log p(z_i); the three sum
    to log q(z_i|x_i) - log p(z_i), a one-sample estimate of KL(q(z|x_i) || p(z)). log q(z) and its
    marginals are minibatch-stratified estimates (`log_stratified_weights`)."""
    b = z.shape[0]
    # log q(z_i,d | x_j) for every pair (i, j) and dimension d: (B, B, D)
    pair = -0.5 * ((z[:, None] - mean[None]).pow(2) * torch.exp(-logvar[None]) + logvar[None] + math.log(2 * math.pi))
    log_w = log_stratified_weights(b, dataset_size, z.device)
    log_qz = torch.logsumexp(log_w + pair.sum(-1), dim=1)
    log_qz_marginals = torch.logsumexp(log_w[..., None] + pair, dim=1).sum(-1)
    log_qz_x = log_normal_diag(z, mean, logvar)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_qz_marginals,
            "dimkl": log_qz_marginals - log_standard_normal(z)}


class BetaTCVAE(DisentanglingVAE):
    """beta-TCVAE (Chen et al. 2018): alpha on the index-code MI, beta on the TC, gamma on the dimension-wise KL."""

    def __init__(self, in_channels: int = 1, image_size: int = 64, latent_dim: int = 10, alpha: float = 1.0,
                 beta: float = 6.0, gamma: float = 1.0) -> None:
        super().__init__(in_channels, image_size, latent_dim)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)

    def objective(self, x: torch.Tensor, dataset_size: int | None = None) -> dict[str, torch.Tensor]:
        """`dataset_size`: N of the data x comes from (the training split); the MSS estimator needs it."""
        if dataset_size is None:
            raise ValueError("beta-TCVAE's objective needs the dataset size N (minibatch-stratified sampling)")
        out = self.terms(x)
        parts = kl_decomposition(out["z"], out["mean"], out["logvar"], dataset_size)
        penalty = self.alpha * parts["mi"] + self.beta * parts["tc"] + self.gamma * parts["dimkl"]
        out.update(parts, loss=(penalty - out["log_likelihood"]).mean())
        return out


# --- FactorVAE ----------------------------------------------------------------------------------
def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: samples of prod_d q(z_d)
    (Kim & Mnih 2018, Algorithm 1)."""
    b, d = z.shape
    order = torch.argsort(torch.rand(b, d, generator=generator), dim=0).to(z.device)
    return torch.gather(z, 0, order)


class CodeDiscriminator(nn.Module):
    """D(z): logits of (z from q(z), z from prod_d q(z_d)); `layers` x `hidden` LeakyReLU(0.2) (Kim & Mnih: 6 x 1000)."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def total_correlation(logits: torch.Tensor) -> torch.Tensor:
    """The density-ratio estimate log D(z) / (1 - D(z)) per code (class 0 = joint, 1 = permuted)."""
    logits = at_least_float32(logits)
    return logits[:, 0] - logits[:, 1]


def discriminator_loss(logits_joint: torch.Tensor, logits_permuted: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of telling codes (class 0) from permuted codes (class 1); ln 2 at chance."""
    joint, permuted = at_least_float32(logits_joint), at_least_float32(logits_permuted)
    zeros = torch.zeros(joint.shape[0], dtype=torch.long, device=joint.device)
    return 0.5 * (F.cross_entropy(joint, zeros) + F.cross_entropy(permuted, torch.ones_like(zeros)))


class FactorVAE(DisentanglingVAE):
    """FactorVAE (Kim & Mnih 2018): the ELBO plus gamma times the discriminator's TC estimate."""

    def __init__(self, in_channels: int = 1, image_size: int = 64, latent_dim: int = 10, gamma: float = 35.0,
                 disc_hidden: int = 1000, disc_layers: int = 6) -> None:
        super().__init__(in_channels, image_size, latent_dim)
        self.gamma = float(gamma)
        self.discriminator = CodeDiscriminator(latent_dim, disc_hidden, disc_layers)

    def objective(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The VAE's loss; the discriminator is only read here (train it with `discriminator_objective`)."""
        out = self.terms(x)
        out["tc"] = total_correlation(self.discriminator(out["z"]))
        out["loss"] = (out["kl"] - out["log_likelihood"] + self.gamma * out["tc"]).mean()
        return out

    def discriminator_objective(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The discriminator's loss on codes `z` (detached here) against their permutation."""
        z = z.detach()
        return discriminator_loss(self.discriminator(z), self.discriminator(permute_dims(z, generator)))
