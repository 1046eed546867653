"""Long steps show progress (issue 13): the shared rich bar, and the FID feature pass using it."""

from __future__ import annotations

import contextlib
import io
import sys

import torch

from genlab import progress as progress_mod


def test_the_bar_draws_on_a_terminal_and_is_quiet_elsewhere(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    with progress_mod.progress("quiet", 3) as advance:
        advance(3)
    assert buf.getvalue() == ""  # not a terminal: nothing at all
    monkeypatch.setattr(buf, "isatty", lambda: True, raising=False)
    with progress_mod.progress("outer", 2) as advance:
        with progress_mod.progress("inner", 1) as inner:  # a second live display: a no-op, not a LiveError
            inner(1)
        advance(2)


def test_fid_features_report_progress_over_every_image(monkeypatch):
    from tests.train.test_gan_training import tiny_extractor

    from genlab.eval import features

    seen = {}

    @contextlib.contextmanager
    def record(description, total):
        seen.update(description=description, total=total, done=0)
        yield lambda n: seen.__setitem__("done", seen["done"] + n)

    monkeypatch.setattr(features, "progress", record)
    feats = features.features_from_tensors(tiny_extractor(), torch.rand(23, 3, 16, 16), batch_size=5)
    assert feats.shape[0] == 23 and seen == {"description": "FID features", "total": 23, "done": 23}
