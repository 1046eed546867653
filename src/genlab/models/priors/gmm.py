"""The study's prior: a Gaussian mixture (scikit-learn) on the flattened quantised embeddings of
code maps after PCA. Samples are mapped back through the PCA and snapped to the nearest codebook
vector at each position. It is a density on the PCA space, not a distribution over code maps, so
it has no likelihood of a code map to report.

Contract: `GMMPrior.fit(indices, codebook)`, then the `CodePrior` protocol of `genlab.models.priors`
(`log_prob` is None: `log_prob_kind = None`). Saved as arrays + JSON settings (`to_arrays` /
`from_arrays`, written by `genlab.safe_load.save_arrays`), never pickled.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from sklearn.decomposition import IncrementalPCA
from sklearn.mixture import GaussianMixture

from genlab.models.sklearn_arrays import estimator_from_arrays, estimator_to_arrays


class GMMPrior:
    log_prob_kind = None  # a density on the PCA space, not a distribution over code maps

    def __init__(self, components: int = 100, pca_dim: int = 64, covariance: str = "diag", seed: int = 0,
                 chunk: int = 512) -> None:
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        self.components, self.pca_dim, self.covariance, self.seed, self.chunk = (
            components, pca_dim, covariance, seed, chunk)
        self.pca: IncrementalPCA | None = None
        self.gmm: GaussianMixture | None = None
        self.codebook: np.ndarray = np.zeros((0, 0), dtype=np.float32)  # set by fit
        self.grid: tuple[int, int] = (0, 0)

    @property
    def _flat(self) -> int:
        return self.grid[0] * self.grid[1] * self.codebook.shape[1]

    def _chunks(self, indices: np.ndarray, min_rows: int = 1) -> Iterator[np.ndarray]:
        """Flattened (H*W*D) embeddings a chunk at a time (all at once would not fit in memory); a
        short last chunk is folded into the one before, as IncrementalPCA needs `min_rows` per chunk."""
        n = len(indices)
        size = max(self.chunk, min_rows)
        bounds = list(range(0, n, size)) + [n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < min_rows:
            del bounds[-2]
        for a, b in zip(bounds[:-1], bounds[1:]):
            yield self.codebook[indices[a:b]].reshape(b - a, -1)

    def fit(self, indices: torch.Tensor | np.ndarray, codebook: torch.Tensor | np.ndarray) -> "GMMPrior":
        indices = np.asarray(indices, dtype=np.int64)
        self.codebook = np.asarray(torch.as_tensor(codebook).detach().cpu(), dtype=np.float32)
        self.grid = (int(indices.shape[1]), int(indices.shape[2]))
        n = len(indices)
        if n <= self.components:
            raise ValueError(f"the mixture needs more code maps ({n}) than components ({self.components})")
        dim = min(self.pca_dim, n - 1, self._flat)
        self.pca = IncrementalPCA(n_components=dim)
        for block in self._chunks(indices, min_rows=dim):
            self.pca.partial_fit(block)
        reduced = np.concatenate([self.pca.transform(block) for block in self._chunks(indices)])
        self.gmm = GaussianMixture(self.components, covariance_type=self.covariance, random_state=self.seed,
                                   reg_covar=1e-4).fit(reduced)
        return self

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON settings) of the fitted prior; `from_arrays` rebuilds it."""
        if self.gmm is None or self.pca is None:
            raise RuntimeError("fit the prior before saving it")
        gmm, gmm_settings = estimator_to_arrays(self.gmm, "gmm")
        pca, pca_settings = estimator_to_arrays(self.pca, "pca")
        settings = {"kind": "gmm", "components": self.components, "pca_dim": self.pca_dim,
                    "covariance": self.covariance, "seed": self.seed, "chunk": self.chunk, "grid": list(self.grid),
                    "gmm": gmm_settings, "pca": pca_settings}
        return {"codebook": self.codebook, **gmm, **pca}, settings

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], settings: dict) -> "GMMPrior":
        prior = cls(settings["components"], settings["pca_dim"], settings["covariance"], settings["seed"],
                    settings["chunk"])
        prior.codebook = np.asarray(arrays["codebook"], dtype=np.float32)
        prior.grid = (int(settings["grid"][0]), int(settings["grid"][1]))
        prior.gmm = estimator_from_arrays(arrays, settings["gmm"], "gmm")
        prior.pca = estimator_from_arrays(arrays, settings["pca"], "pca")
        return prior

    def snap(self, flat: np.ndarray) -> np.ndarray:
        """(N, H*W*D) vectors -> (N, H, W) nearest-code indices."""
        e = torch.from_numpy(self.codebook)
        v = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)).view(-1, e.shape[1])
        d = v.pow(2).sum(1, keepdim=True) - 2 * v @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1).view(len(flat), *self.grid).numpy()

    def log_prob(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> None:
        return None

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        if temperature != 1.0:
            raise ValueError("the Gaussian mixture samples at temperature 1 only")
        if self.gmm is None or self.pca is None:
            raise RuntimeError("fit the prior before sampling")
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator)) if generator is not None else self.seed
        self.gmm.random_state = np.random.RandomState(seed)
        z, _ = self.gmm.sample(n)
        z = z[np.random.RandomState(seed).permutation(n)]  # sklearn returns samples grouped by component
        return torch.from_numpy(self.snap(self.pca.inverse_transform(z))).long()
