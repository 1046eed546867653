"""The VQ-VAE (van den Oord et al., 2017) as plain nn.Modules: an encoder to a grid of vectors,
a vector quantiser, a mirrored decoder.

Contract of `VectorQuantizer` (after Sonnet's `VectorQuantizer` / `VectorQuantizerEMA`):
  `quantizer(z)` with z of shape (N, D, H, W) returns a dict with
    - `quantized`  (N, D, H, W) the nearest codes, with a straight-through gradient to z
    - `indices`    (N, H, W) int64 code indices
    - `loss`       scalar: beta * ||z - sg[e]||^2 (+ ||sg[z] - e||^2 when the codebook learns by loss)
    - `perplexity` scalar: exp(entropy) of the batch's code histogram (K when every code is used equally)
    - `counts`     (K,) how often each code was picked in this batch (this process only)
  In training mode it also updates the codebook (EMA), initialises it from the first batch and
  restarts dead codes; in eval mode it never changes state.

EMA update (one training step; n_k and s_k = sum of the vectors assigned to code k, summed over
every process under torch.distributed):
    N_k <- decay * N_k + (1 - decay) * n_k
    S_k <- decay * S_k + (1 - decay) * s_k
    e_k <- S_k / N~_k,   N~_k = (N_k + eps) / (sum N + K eps) * sum N   (Laplace smoothing, as Sonnet)
Unlike Sonnet (zero-debiased averages starting at 0) N starts at 1 and S at the initial codes, so a
code that is never picked keeps its place instead of collapsing to the origin.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import Generative

CODEBOOKS = ("ema", "loss")
INITS = ("kmeans", "data", "uniform")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's value everywhere, so every process keeps an identical codebook."""
    if _distributed():
        dist.broadcast(t, src=0)
    return t


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())


def _kmeans(vectors: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    from sklearn.cluster import KMeans

    x = vectors.detach().double().cpu().numpy()
    if len(x) < k:  # fewer vectors than codes: repeat them; the jitter below separates the copies
        x = np.resize(x, (k, x.shape[1]))
    km = KMeans(n_clusters=k, n_init=1, max_iter=20, random_state=seed).fit(x)
    return torch.as_tensor(km.cluster_centers_, dtype=vectors.dtype, device=vectors.device)


class VectorQuantizer(nn.Module):
    """K codes of dimension D; see the module docstring for the contract and the EMA rule.

    init: "kmeans" (k-means on the first training batch's vectors), "data" (random vectors of the
    first batch) or "uniform" (U(-1/K, 1/K) at construction, Sonnet-style). A code whose running
    count of picks per batch (an EMA with `usage_decay`, i.e. over the last ~10 batches) falls
    below `restart_threshold` is dead and is moved onto a random encoder output of the current
    batch (0 disables restarts). The short window matters: early in training the encoder moves
    fast and leaves most codes behind, and they should not wait hundreds of steps.
    """

    # buffers (and, with codebook="loss", the embedding as a Parameter), registered in __init__
    embedding: torch.Tensor
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    usage: torch.Tensor
    initialized: torch.Tensor
    restarts: torch.Tensor

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, codebook: str = "ema",
                 decay: float = 0.99, eps: float = 1e-5, init: str = "kmeans",
                 restart_threshold: float = 1.0, seed: int = 0, usage_decay: float = 0.9) -> None:
        super().__init__()
        if codebook not in CODEBOOKS:
            raise ValueError(f"codebook must be one of {CODEBOOKS}, got {codebook!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.codebook_kind, self.decay, self.eps, self.init = codebook, decay, eps, init
        self.restart_threshold, self.seed, self.usage_decay = restart_threshold, seed, usage_decay
        gen = torch.Generator().manual_seed(seed)
        weight = (torch.rand(num_codes, dim, generator=gen) * 2 - 1) / num_codes
        if codebook == "ema":
            self.register_buffer("embedding", weight)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", weight.clone())
        else:
            self.embedding = nn.Parameter(weight)
        # running picks per batch, for restarts; -1 = not started (the first batch sets it)
        self.register_buffer("usage", torch.full((num_codes,), -1.0))
        self.register_buffer("initialized", torch.tensor(init == "uniform"))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # total codes restarted

    # --- lookups ------------------------------------------------------------------------------
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean) for each row of (M, D)."""
        e = self.embedding
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(N, H, W) indices -> (N, D, H, W) code vectors."""
        return F.embedding(indices, self.embedding).permute(0, 3, 1, 2).contiguous()

    # --- forward ------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        # distances, EMA sums and code counts in float32 even under bf16/fp16 autocast
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z)

    def _quantize(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        n, d, h, w = z.shape
        if d != self.dim:
            raise ValueError(f"expected {self.dim} channels, got {d}")
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training and not bool(self.initialized):
            self._initialise(flat.detach())
        indices = self.nearest(flat.detach())
        quantized = F.embedding(indices, self.embedding)
        commitment = F.mse_loss(flat, quantized.detach())
        loss = self.beta * commitment
        if self.codebook_kind == "loss":
            loss = loss + F.mse_loss(quantized, flat.detach())
        counts = torch.bincount(indices, minlength=self.num_codes)
        if self.training:
            self._update(flat.detach(), indices, counts)
        st = flat + (quantized - flat).detach()  # straight-through: d(out)/d(z) = identity
        return {
            "quantized": st.view(n, h, w, d).permute(0, 3, 1, 2).contiguous(),
            "indices": indices.view(n, h, w),
            "loss": loss,
            "perplexity": perplexity_of(counts),
            "counts": counts,
        }

    # --- state changes (training only) --------------------------------------------------------
    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        if self.init == "kmeans":
            new = _kmeans(flat[torch.randperm(len(flat), generator=gen)[:20000].to(flat.device)],
                          self.num_codes, self.seed)
        else:
            new = flat[torch.randint(len(flat), (self.num_codes,), generator=gen).to(flat.device)]
        new = _broadcast(new.contiguous())
        self.embedding.data.copy_(new)
        if self.codebook_kind == "ema":
            self.ema_sum.copy_(new)
            self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        counts = _all_reduce_sum(counts.to(flat.dtype))
        if bool(self.usage[0] < 0):  # every code starts as if used uniformly: a grace period
            self.usage.fill_(float(counts.sum()) / self.num_codes)
        if self.codebook_kind == "ema":
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
            sums = _all_reduce_sum(sums)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
            self.embedding.copy_(self.ema_sum / smoothed[:, None])
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        if self.restart_threshold > 0:
            self._restart_dead(flat, float(counts.sum()))

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, batch_total: float) -> None:
        dead = self.usage < self.restart_threshold  # identical on every rank: usage is all-reduced
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pick = torch.randint(len(flat), (n_dead,), device=flat.device)
        new = _broadcast(flat[pick].contiguous())
        self.embedding.data[dead] = new
        if self.codebook_kind == "ema":
            self.ema_sum[dead] = new
            self.ema_count[dead] = 1.0
        self.usage[dead] = batch_total / self.num_codes
        self.restarts += n_dead


# --- encoder / decoder ----------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in the VQ-VAE paper."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """(N, C, 64, 64) -> (N, D, 32, 32): one stride-2 4x4 conv, a 3x3 conv, residual blocks, 1x1 to D."""

    def __init__(self, in_channels: int, hidden: int, res_hidden: int, res_blocks: int, code_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            *[ResidualBlock(hidden, res_hidden) for _ in range(res_blocks)], nn.ReLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """The mirror: 3x3 conv from D, residual blocks, one stride-2 4x4 transposed conv to the image."""

    def __init__(self, out_channels: int, hidden: int, res_hidden: int, res_blocks: int, code_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1),
            *[ResidualBlock(hidden, res_hidden) for _ in range(res_blocks)], nn.ReLU(),
            nn.ConvTranspose2d(hidden, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VQVAE(Generative):
    """Encoder -> VectorQuantizer -> Decoder. Images in [0, 1]; the networks see x - 0.5.

    - `noise(n, generator)`  uniformly random (N, H/2, W/2) code maps of `image_size` images (no
                             prior yet: a prior over code maps is what `genlab prior` trains)
    - `sample(maps)`         images in [0, 1] decoded from code maps (= `decode_indices`)
    - `encode(x)`            (N, D, H/2, W/2) continuous encoder outputs
    - `quantize(z)`          the quantiser's dict (see `VectorQuantizer`)
    - `codes(x)`             (N, H/2, W/2) int64 code indices
    - `decode(zq)`           images (unclamped; the MSE is taken on them)
    - `decode_indices(idx)`  images in [0, 1] from code maps
    - `reconstruct(x)`       images in [0, 1]
    - `forward(x)`           dict: reconstruction, mse, vq_loss, loss (= mse / var(x) + vq_loss), perplexity,
                             indices, counts
    """

    def __init__(self, in_channels: int = 3, hidden: int = 128, res_hidden: int = 32, res_blocks: int = 2,
                 code_dim: int = 64, num_codes: int = 512, beta: float = 0.25, codebook: str = "ema",
                 decay: float = 0.99, eps: float = 1e-5, init: str = "kmeans", restart_threshold: float = 1.0,
                 seed: int = 0, image_size: int = 64) -> None:
        super().__init__()
        self.in_channels, self.code_dim, self.num_codes = in_channels, code_dim, num_codes
        self.image_size = image_size
        self.encoder = Encoder(in_channels, hidden, res_hidden, res_blocks, code_dim)
        self.quantizer = VectorQuantizer(num_codes, code_dim, beta, codebook, decay, eps, init,
                                         restart_threshold, seed)
        self.decoder = Decoder(in_channels, hidden, res_hidden, res_blocks, code_dim)

    has_encoder = True

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantizer.embedding

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the code map of one image: the encoder halves the side once."""
        return self.image_size // 2, self.image_size // 2

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.num_codes, (n, *self.grid), generator=generator).to(self.codebook.device)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decode_indices(noise)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x - 0.5)

    def quantize(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.quantizer(z)

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        return self.decoder(zq) + 0.5

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        return self.quantizer.nearest(flat).view(z.shape[0], z.shape[2], z.shape[3])

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(indices)).clamp(0, 1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_indices(self.codes(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.quantizer(self.encode(x))
        recon = self.decode(q["quantized"])
        mse = F.mse_loss(recon, x)
        # MSE over the batch's pixel variance, like Sonnet's example (MSE / data variance): the
        # weight of the quantiser's terms then does not depend on the images' contrast
        loss = mse / x.var().detach().clamp_min(1e-4) + q["loss"]
        return {"reconstruction": recon, "mse": mse, "vq_loss": q["loss"], "loss": loss,
                "perplexity": q["perplexity"], "indices": q["indices"], "counts": q["counts"]}


def psnr(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1] (recon clamped to [0, 1] first)."""
    mse = (recon.clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def compression(num_codes: int, image_shape: tuple[int, int, int] = (3, 64, 64),
                grid: tuple[int, int] = (32, 32)) -> dict[str, float]:
    """Bits of an 8-bit image against bits of its code map (log2 K bits per code)."""
    image_bits = int(np.prod(image_shape)) * 8
    code_bits = grid[0] * grid[1] * math.log2(num_codes)
    return {"image_bits": image_bits, "code_bits": code_bits, "ratio": image_bits / code_bits}
