"""Fitted scikit-learn estimators as plain arrays and JSON settings, and back, so a saved prior is
data, not a pickle (which could run code when a shared run is opened; see `genlab.safe_load`).

An estimator is its constructor parameters (JSON) plus its fitted attributes (the names ending in
"_", each a number or an array). Only the classes named in `ESTIMATORS` are rebuilt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.decomposition import IncrementalPCA
from sklearn.mixture import GaussianMixture

ESTIMATORS: dict[str, type] = {"GaussianMixture": GaussianMixture, "IncrementalPCA": IncrementalPCA}


def estimator_to_arrays(est: Any, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays named `prefix.attr_`, settings {class, params}) of a fitted estimator."""
    name = type(est).__name__
    if name not in ESTIMATORS:
        raise TypeError(f"no array form for {name}")
    params = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else None)  # a RandomState: reseeded anyway
              for k, v in est.get_params().items()}
    arrays = {}
    for attr, value in vars(est).items():
        if not attr.endswith("_") or attr.startswith("_"):
            continue
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"{name}.{attr} is not numeric; it has no array form")
        arrays[f"{prefix}.{attr}"] = array
    return arrays, {"class": name, "params": params}


def estimator_from_arrays(arrays: dict[str, np.ndarray], settings: dict[str, Any], prefix: str) -> Any:
    """The estimator `estimator_to_arrays` described, fitted attributes restored (0-d arrays as scalars)."""
    cls = ESTIMATORS.get(settings.get("class", ""))
    if cls is None:
        raise ValueError(f"unknown estimator {settings.get('class')!r}")
    est = cls(**settings.get("params", {}))
    start = f"{prefix}."
    for key, array in arrays.items():
        if key.startswith(start):
            setattr(est, key[len(start):], array.item() if array.ndim == 0 else array)
    return est
