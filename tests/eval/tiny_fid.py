"""A tiny stand-in for pytorch-fid's Inception network (`genlab.eval.features.FID_NETWORK`), so the
weights download and the whole `genlab fid` path run on a file of a few kB in milliseconds. The
real network's check is tested apart (test_fid_download.py: pytorch-fid's own key set and shapes)."""

from __future__ import annotations

import io

import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.eval import features

DIMS = 64  # a --dims genlab fid accepts


class TinyFID(torch.nn.Module):
    """conv -> bn -> relu like pytorch-fid's BasicConv2d (so BatchNorm folding runs too), pooled to DIMS."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, DIMS, 5, stride=4, bias=False)
        self.bn = torch.nn.BatchNorm2d(DIMS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1)]


def shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in TinyFID().state_dict().items()}


def build(state_dict: dict, dims: int, origin: str) -> TinyFID:
    if dims != DIMS:
        raise GenlabError(f"the tiny FID network has {DIMS} dims, not {dims}")
    net = TinyFID()
    net.load_state_dict(state_dict)
    return net.eval()


NETWORK = features.FIDNetwork(shapes=shapes, build=build)


def weights_bytes(seed: int = 0) -> bytes:
    """A seeded state dict of TinyFID, as torch.save writes it."""
    torch.manual_seed(seed)
    net = TinyFID()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def use() -> None:
    """Put the tiny network in place (in a subprocess; tests use monkeypatch)."""
    features.FID_NETWORK = NETWORK
