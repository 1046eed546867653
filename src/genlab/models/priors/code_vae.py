"""The study's small VAE over code maps: codes are embedded, a conv encoder gives a diagonal
Gaussian q(z|map), and the decoder gives independent categorical logits over the K codes at
every position. Its negative ELBO is an upper bound on -log p(map).

Contract: the `CodePrior` protocol of `genlab.models.priors` (`log_prob` is the ELBO, a lower
bound on log p: `log_prob_kind = "bound"`); `loss(indices)` -> dict with per-map `elbo`, `nll`
(= -elbo, nats) and the batch `loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.distributions import kl_diag_to_standard


class CodeVAE(nn.Module):
    """Two stride-2 convs down (H -> H/4), a linear Gaussian head; the mirror up to K logits per position."""

    log_prob_kind = "bound"

    def __init__(self, num_codes: int, grid: tuple[int, int] = (32, 32), latent_dim: int = 64,
                 hidden: int = 64, embed_dim: int = 32) -> None:
        super().__init__()
        h, w = grid
        if h % 4 or w % 4:
            raise ValueError(f"the code grid {grid} must be divisible by 4")
        self.num_codes, self.grid, self.latent_dim = num_codes, (h, w), latent_dim
        self._small = (hidden, h // 4, w // 4)
        flat = hidden * (h // 4) * (w // 4)
        self.embed = nn.Embedding(num_codes, embed_dim)
        self.encoder = nn.Sequential(
            nn.Conv2d(embed_dim, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
        )
        self.head = nn.Linear(flat, 2 * latent_dim)
        self.fc = nn.Linear(latent_dim, flat)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, num_codes, 1),
        )

    def encode(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.encoder(self.embed(indices).permute(0, 3, 1, 2))).chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, K, H, W) logits."""
        return self.decoder(self.fc(z).view(-1, *self._small))

    def elbo(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = self.encode(indices)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device) if generator else torch.randn_like(mean)
        z = mean + torch.exp(0.5 * logvar) * eps
        log_lik = -F.cross_entropy(self.decode(z), indices, reduction="none").flatten(1).sum(1)
        kl = kl_diag_to_standard(mean, logvar)
        elbo = log_lik - kl
        return {"elbo": elbo, "nll": -elbo, "log_likelihood": log_lik, "kl": kl,
                "loss": -elbo.mean() / indices[0].numel()}

    def loss(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.elbo(indices)

    @torch.no_grad()
    def log_prob(self, indices: torch.Tensor, generator: torch.Generator | None = None,
                 samples: int = 1) -> torch.Tensor:
        """The ELBO in nats per map, averaged over `samples` draws of z (a lower bound on log p)."""
        return torch.stack([self.elbo(indices, generator)["elbo"] for _ in range(samples)]).mean(0)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Code maps from z ~ N(0, I): each position drawn from p(code | z) at `temperature`, or
        with temperature 0 its most likely code (the analogue of showing a VAE's mean image)."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        device = self.fc.weight.device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        if temperature == 0:
            return self.decode(z).argmax(1)
        probs = torch.softmax(self.decode(z).double() / temperature, dim=1)  # (N, K, H, W)
        flat = probs.permute(0, 2, 3, 1).reshape(-1, self.num_codes).cpu()
        return torch.multinomial(flat, 1, generator=generator).view(n, *self.grid).to(device)
