"""Ground-truth data for the metrics: factor classes sampled uniformly and independently, the
observations they make, and the codes of a representation (cached per factor combination).

- `DSpritesFactors`: dSprites without its colour factor (one value), five factors shape (3), scale
  (6), orientation (40), posX (32), posY (32); images from genlab's renderer
  (`genlab.data.dsprites.render`) or the official npz (`root`).
- `SyntheticFactors`: any factor sizes; the observation is the factor classes themselves (float),
  so a "representation" is any function of the factors (the metrics' tests need no images).
- `CodeCache`: the codes of a deterministic representation (the mean of q(z|x)) for factor
  arrays; each factor combination is encoded once however often the metrics draw it.

What dSprites' orientation factor does to the metrics (a ceiling no encoder can pass): its classes
are `linspace(0, 2 pi, 40)`, so class 0 and class 39 draw the same image for every shape (exact
duplicates; 1/40 of the images). Squares also look alike every 90 degrees and ellipses every 180:
90 degrees is 9.75 class steps, so those are not exact duplicates on the grid but differ by a
2.3-degree rotation (a few edge pixels at most). A representation of the *image* can therefore know a
square's orientation only modulo 90 degrees and an ellipse's modulo 180, in practice:
  - MIG, modularity: I(code; orientation) <= H(orientation) - H(orientation | image) ~ ln 40 -
    (ln 4 + ln 2 + (2/40) ln 2) / 3 = 2.98 nats of ln 40 = 3.69, so orientation's normalised MI,
    and its MIG term, is at most ~0.81 (0.99 counting the exact duplicates only). MIG's ceiling on
    dSprites is ~0.96 before binning; with 20 bins (the dlib protocol) a factor with more than 20
    classes loses more: the true factors themselves score ln 20 / ln 40 = 0.81 on orientation and
    0.85 on posX/posY, a MIG of ~0.90 (tested). Modularity normalises per latent and keeps ceiling 1.
  - SAP (accuracy of a 1-d classifier), DCI informativeness (accuracy of boosted trees): the best
    possible orientation accuracy is ~(1/4 + 1/2 + 39/40) / 3 = 0.58, so DCI informativeness'
    ceiling is ~(4 + 0.58) / 5 = 0.92 and SAP's orientation term is below 0.58.
  - explicitness (one-vs-rest ROC-AUC): aliased classes tie, a ceiling slightly below 1.
  - BetaVAE and FactorVAE scores, DCI disentanglement and completeness: unaffected (ceiling 1): a
    fixed orientation still fixes whatever the code keeps of it, and importances do not care.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from genlab.data import dsprites
from genlab.errors import GenlabError

Represent = Callable[[np.ndarray], np.ndarray]
DENSE_CACHE_LIMIT = 1 << 22  # factor combinations up to which codes are cached by a position table


class GroundTruth:
    """Factors with independent uniform classes; subclasses say what an observation is."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    description: str = ""

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def n_combinations(self) -> int:
        return int(np.prod(np.array(self.factor_sizes, dtype=np.float64)))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) int64 classes, each factor uniform and independent."""
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def index(self, factors: np.ndarray) -> np.ndarray:
        """One integer per factor combination (mixed radix, the last factor fastest)."""
        out = np.zeros(len(factors), dtype=np.int64)
        for k, s in enumerate(self.factor_sizes):
            out = out * s + factors[:, k]
        return out

    def observe(self, factors: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class SyntheticFactors(GroundTruth):
    """Observation = the factor classes as float64 (N, K): a representation is a function of them."""

    def __init__(self, sizes: tuple[int, ...], names: tuple[str, ...] | None = None):
        self.factor_sizes = tuple(int(s) for s in sizes)
        self.factor_names = names or tuple(f"factor{k}" for k in range(len(sizes)))
        self.description = f"synthetic factors {self.factor_sizes}"

    def observe(self, factors: np.ndarray) -> np.ndarray:
        return factors.astype(np.float64)


class DSpritesFactors(GroundTruth):
    """dSprites' five factors (colour dropped); images float32 (N, 1, 64, 64) in {0, 1}.

    `root=None` renders the images (genlab's renderer, exact to the official set); `root` = the
    official npz (or its folder) reads them from it."""

    def __init__(self, root: str | None = None):
        self.factor_names = dsprites.LATENT_NAMES[1:]
        self.factor_sizes = dsprites.LATENT_SIZES[1:]
        self.images: np.ndarray | None = None
        self.packed: np.ndarray | None = None
        if root is None:
            self.description = f"dSprites, genlab renderer v{dsprites.RENDERER_VERSION}"
            if dsprites.cache_path().is_file():  # the whole set already rendered: read it, don't redraw
                self.packed = dsprites.load_all(build=False)
                self.description += " (cached render)"
            return
        npz = dsprites.npz_path(root)
        data = dsprites.load_npz(npz)  # one-line GenlabErrors for a missing or foreign file
        if len(data["imgs"]) != dsprites.N_IMAGES:
            raise GenlabError(f"{npz}: holds {len(data['imgs'])} images; the metrics draw factor "
                              f"combinations freely and need all {dsprites.N_IMAGES} (the official npz), "
                              "or leave out --data-root to render them")
        self.images = data["imgs"]
        self.description = f"dSprites, official npz {npz}"

    def observe(self, factors: np.ndarray) -> np.ndarray:
        classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)
        if self.images is not None:
            imgs = self.images[dsprites.classes_to_index(classes)]
        elif self.packed is not None:
            idx = dsprites.classes_to_index(classes)
            order = np.argsort(idx)  # memory-mapped reads want sorted rows
            imgs = np.empty((len(idx), dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE), np.uint8)
            imgs[order] = dsprites.unpack(np.asarray(self.packed[idx[order]]))
        else:
            imgs = dsprites.render(classes)
        return imgs[:, None].astype(np.float32)


class CodeCache:
    """`codes(factors)` -> float64 (N, D): the representation of each combination's observation,
    computed once per combination (the representation must be deterministic, as the mean of q(z|x))."""

    def __init__(self, data: GroundTruth, represent: Represent, batch_size: int = 512,
                 advance: Callable[[int], None] | None = None):
        self.data, self.represent, self.batch_size = data, represent, batch_size
        self.advance = advance  # called with the number of codes looked up (a progress bar)
        dense = data.n_combinations <= DENSE_CACHE_LIMIT
        self.position = np.full(data.n_combinations, -1, dtype=np.int64) if dense else None
        self.store: np.ndarray | None = None
        self.filled = 0
        self.encoded = 0  # observations passed through the representation (for the record)

    def encode(self, factors: np.ndarray) -> np.ndarray:
        parts = []
        for i in range(0, len(factors), self.batch_size):
            z = np.asarray(self.represent(self.data.observe(factors[i:i + self.batch_size])), dtype=np.float64)
            if z.ndim != 2 or len(z) != len(factors[i:i + self.batch_size]):
                raise GenlabError(f"the representation returned codes of shape {z.shape}; expected (N, D)")
            parts.append(z)
        self.encoded += len(factors)
        return np.concatenate(parts) if parts else np.zeros((0, 0))

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        if self.advance is not None:
            self.advance(len(factors))
        if self.position is None:
            return self.encode(factors)
        ids = self.data.index(factors)
        new = np.unique(ids[self.position[ids] < 0])
        if len(new):
            first = np.unique(ids, return_index=True)
            rows = first[1][np.searchsorted(first[0], new)]
            codes = self.encode(factors[rows])
            self.grow(len(new), codes.shape[1])
            assert self.store is not None
            self.store[self.filled:self.filled + len(new)] = codes
            self.position[new] = np.arange(self.filled, self.filled + len(new))
            self.filled += len(new)
        assert self.store is not None
        return self.store[self.position[ids]]

    def grow(self, extra: int, dim: int) -> None:
        need = self.filled + extra
        if self.store is None:
            self.store = np.empty((max(need, 1024), dim))
        elif need > len(self.store):
            bigger = np.empty((max(need, 2 * len(self.store)), dim))
            bigger[:self.filled] = self.store[:self.filled]
            self.store = bigger
