"""`trainer.precision: auto` and `trainer.channels_last: auto`: the fastest setting that keeps results.

On a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), auto means bf16 autocast with the
weights in channels_last: measured on such a 2-core CPU at 1.5x (VQ-VAE) to 4x (128-px VAE) float32's
training speed; quality at the same step is within the seed-to-seed spread for the demo's VAE and
not shown (two seeds) for the VQ-VAE and the MSE dSprites VAE (benchmarks/RESULTS.md, "Training
speed on this CPU" and "bf16 at equal steps"). Everywhere else,
auto is float32 in NCHW, as before auto existed: on a CPU without bf16 units autocast emulates it
(slower), and on GPUs the choice was not measured here.
"""

from __future__ import annotations

import torch

AUTO = "auto"
CPU_FAST_PRECISION = "bf16-mixed"
PORTABLE_PRECISION = "32-true"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively. torch has no public query for it; its own checks
    (used by oneDNN to pick bf16 kernels) are read when present, and anything else counts as no."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if callable(check))


def trains_on_cpu(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` setting ends up on the CPU (auto: no CUDA or MPS device)."""
    if accelerator == "cpu":
        return True
    if accelerator != AUTO:
        return False
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def fast_cpu(accelerator: str) -> bool:
    return trains_on_cpu(accelerator) and cpu_has_native_bf16()


def resolve_precision(precision: str, accelerator: str) -> str:
    """The Lightning precision that `trainer.precision` means on this machine."""
    if precision != AUTO:
        return precision
    return CPU_FAST_PRECISION if fast_cpu(accelerator) else PORTABLE_PRECISION


def resolve_channels_last(channels_last: bool | str, accelerator: str) -> bool:
    """Whether `trainer.channels_last` puts the weights in NHWC on this machine."""
    if channels_last == AUTO:
        return fast_cpu(accelerator)
    return bool(channels_last)
