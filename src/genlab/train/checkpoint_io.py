"""Checkpoints written atomically beside their final path, and checked before a resume uses them.

Lightning's own writer stages the file in the system temp folder and copies it across
filesystems, so a full disk leaves a truncated last.ckpt at its final path. Here the temp file
lives in the checkpoint folder, is fsynced, then renamed: a failed write keeps the old file.
Reading goes through `genlab.safe_load` (weights only): a resume never runs code from a checkpoint.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from genlab.errors import GenlabError
from genlab.io import atomic_path
from genlab.safe_load import first_line, load_torch, refusal, wants_code


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        # serialised in memory first: torch.save straight into a file turns ENOSPC into an opaque
        # RuntimeError from its zip writer, and the one-line message needs the real OSError
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path, kept=f"the previous {path.name} was kept") as tmp:
            write_file(tmp, buffer.getbuffer())

    def load_checkpoint(self, path: Any, map_location: Optional[Any] = None,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        """Lightning's resume reads here: always weights only, whatever it asks for."""
        return load_torch(path, "checkpoint", map_location=map_location or "cpu")


def write_file(path: Path, data: memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from (truncated, not a checkpoint), or None when it loads.
    A checkpoint that holds Python objects is not a damaged file to fall back from: it is refused."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        if wants_code(exc):
            raise refusal(path) from None
        return first_line(exc)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        return "not a Lightning checkpoint (no state_dict)"
    return None


def resume_checkpoint(candidates: list[Path], warn=print) -> Path:
    """The first of `candidates` (last.ckpt, then fallbacks) that loads; says when it had to fall back."""
    problems = []
    for path in candidates:
        if not path.is_file():
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                warn(f"warning: {'; '.join(problems)}; resuming from {path} instead")
            return path
        problems.append(f"{path} is damaged ({problem})")
    if problems:
        raise GenlabError(f"{'; '.join(problems)}; no usable checkpoint left to resume from "
                          "(start the run again)")
    raise GenlabError(f"nothing to resume: none of {', '.join(os.fspath(p) for p in candidates)} exists")
