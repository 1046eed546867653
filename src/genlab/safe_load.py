"""Opening files genlab did not just write (a colleague's run, a checkpoint from an issue) without
running code from them.

A pickle can name any Python callable to call while it loads, so a shared checkpoint or prior
could run a shell command the moment it is opened. Every reader of such a file goes through here:
torch files load with `weights_only=True` (tensors, numbers, strings, lists and dicts only), npz
files with `allow_pickle=False` (plain arrays only). A file that would need code to load is refused
in one line naming it; nothing from it runs. What genlab writes itself needs nothing more.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from genlab.errors import GenlabError
from genlab.io import atomic_path

SETTINGS_KEY = "settings"  # the JSON settings saved beside the arrays of an npz (a plain string array)


def refusal(path: str | Path, what: str = "checkpoint", fix: str = "") -> GenlabError:
    """The one line for a file that holds a Python object where weights or arrays belong."""
    return GenlabError(f"{path}: it holds a Python object, not weights; genlab will not run code from a {what} "
                       f"({fix or 'ask for a file saved by genlab, or re-create it'})")


def first_line(exc: BaseException) -> str:
    """The exception's message without torch's multi-paragraph advice: its last non-empty paragraph's
    first line (torch puts the actual reason there), else its first line."""
    paragraphs = [p.strip() for p in str(exc).split("\n\n") if p.strip()]
    reason = next((p for p in paragraphs if "GLOBAL" in p or "Unsupported" in p), paragraphs[0] if paragraphs else "")
    return f"{type(exc).__name__}: {reason.splitlines()[0]}" if reason else type(exc).__name__


def wants_code(exc: BaseException) -> bool:
    """torch's weights-only unpickler refuses a file for one of two reasons: it names a Python global
    (a class or a callable: code would run) or it is not a pickle at all (a damaged or foreign file)."""
    return isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc)


def load_torch(path: str | Path, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`; a file holding Python objects or an unreadable one is one line."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        if wants_code(exc):
            raise refusal(path, what) from None
        raise GenlabError(f"{path}: not a readable {what} ({first_line(exc)})") from None


def load_npz(path: str | Path, what: str = "npz file", keys: Iterable[str] | None = None,
             fix: str = "") -> dict[str, np.ndarray]:
    """The arrays of an npz (all, or those of `keys` it has), read with `allow_pickle=False`: an object
    array (a pickle) is refused. Entries not asked for are never read. `fix` ends either error."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            wanted = z.files if keys is None else [k for k in keys if k in z.files]
            return {name: z[name] for name in wanted}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise refusal(path, what, fix) from None
        raise unreadable(path, what, exc, fix) from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, OSError, EOFError, KeyError) as exc:
        raise unreadable(path, what, exc, fix) from None


def unreadable(path: Path, what: str, exc: BaseException, fix: str = "") -> GenlabError:
    return GenlabError(f"{path}: not a readable {what} ({first_line(exc)})" + (f"; {fix}" if fix else ""))


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], settings: dict[str, Any]) -> None:
    """Arrays plus JSON settings in one npz, written atomically; `load_arrays` reads them back."""
    if SETTINGS_KEY in arrays:
        raise ValueError(f"{SETTINGS_KEY!r} is reserved for the settings")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez would add .npz to a name
        np.savez(fh, **arrays, **{SETTINGS_KEY: np.array(json.dumps(settings))})


def load_arrays(path: str | Path, what: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, settings) as `save_arrays` wrote them, without pickle."""
    arrays = load_npz(path, what)
    if SETTINGS_KEY not in arrays:
        raise GenlabError(f"{path}: not a genlab {what} (no {SETTINGS_KEY!r} entry)")
    try:
        settings = json.loads(str(arrays.pop(SETTINGS_KEY)))
    except json.JSONDecodeError as exc:
        raise GenlabError(f"{path}: damaged {what} settings ({exc})") from None
    if not isinstance(settings, dict):
        raise GenlabError(f"{path}: damaged {what} settings (not a JSON object)")
    return arrays, settings
