"""The FID weights on first use, against a real HTTP server on 127.0.0.1 (issue 22): a good
download ends in an FID, in the torch hub cache under the official name; a wrong checksum, a 404,
an HTML page, a transfer cut halfway and a server that is down each exit 2 with one line and leave
nothing behind; two processes fetching at once download once and both compute the FID. The file
served is a tiny network's state dict (tests/eval/tiny_fid.py) standing in for pytorch-fid's."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.data.test_download import Server
from tests.eval import tiny_fid

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.eval import features, fid_weights

REPO = Path(__file__).resolve().parents[2]
OFFICIAL = features.FID_WEIGHTS_FILE


@pytest.fixture
def server():
    with Server() as s:
        yield s


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, downloads allowed, the tiny network in pytorch-fid's place."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    for var in ("GENLAB_OFFLINE", "GENLAB_FID_WEIGHTS", "GENLAB_FID_WEIGHTS_URL", "GENLAB_FID_WEIGHTS_SHA256"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(features, "FID_NETWORK", tiny_fid.NETWORK)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0), ("b", 60)):
        (root / name).mkdir()
        for i in range(12):
            arr = np.clip(rng.normal(100 + shift, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i:02d}.png")
    return str(root / "a"), str(root / "b")


def mirror(monkeypatch, server: Server, body: bytes, path: str = "/w.pth", sha: str | None = None) -> str:
    server.files[path] = body
    url = f"{server.url}{path}"
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", url)
    if sha is not None:
        monkeypatch.setenv("GENLAB_FID_WEIGHTS_SHA256", sha)
    return url


def one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr()
    lines = [line for line in (err.out + err.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def assert_nothing_kept(hub: Path) -> None:
    assert not hub.exists() or list(hub.iterdir()) == []  # no weights, no temp or .part file, no lock


def test_a_good_download_is_verified_kept_under_the_official_name_and_gives_the_fid(hub, server, pngs,
                                                                                     monkeypatch, capsys):
    body = tiny_fid.weights_bytes()
    mirror(monkeypatch, server, body, sha=hashlib.sha256(body).hexdigest())
    assert main(["fid", *pngs, "--dims", "64"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    value = float(out[-1].removeprefix("FID:"))
    assert np.isfinite(value) and value > 0  # two different folders
    assert sorted(p.name for p in hub.iterdir()) == [OFFICIAL]
    assert (hub / OFFICIAL).read_bytes() == body
    assert "sha256 " + hashlib.sha256(body).hexdigest()[:8] in out[0]  # the label names the weights used
    # the second run finds the file: no second request
    assert main(["fid", *pngs, "--dims", "64"]) == 0
    assert float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("FID:")) == value
    assert len(server.requests) == 1


def test_a_wrong_checksum_exits_2_with_one_line_and_keeps_nothing(hub, server, pngs, monkeypatch, capsys):
    url = mirror(monkeypatch, server, tiny_fid.weights_bytes(), sha="0" * 64)
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64"])
    assert "checksum mismatch" in line and url in line and str(hub / OFFICIAL) in line
    assert_nothing_kept(hub)


def test_without_a_mirror_hash_the_name_s_hash_prefix_is_checked(hub, server, monkeypatch, capsys):
    mirror(monkeypatch, server, tiny_fid.weights_bytes())
    line = one_error_line(capsys, ["data", "download", "inception"])
    assert "does not begin with 6726825d" in line and "GENLAB_FID_WEIGHTS_SHA256" in line
    assert_nothing_kept(hub)


def test_a_404_is_one_line_with_the_status(hub, server, pngs, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"{server.url}/gone.pth")
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64"])
    assert "HTTP 404" in line and f"{server.url}/gone.pth" in line and str(hub / OFFICIAL) in line
    assert_nothing_kept(hub)


def test_an_html_page_instead_of_weights_is_refused(hub, server, pngs, monkeypatch, capsys):
    page = b"<!DOCTYPE html><html><body>Please sign in to the network</body></html>"
    mirror(monkeypatch, server, page, sha=hashlib.sha256(page).hexdigest())  # even with a matching hash
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64"])
    assert "HTML page" in line
    assert_nothing_kept(hub)


def test_a_file_that_is_no_state_dict_or_the_wrong_one_is_refused(hub, server, monkeypatch):
    for body, why in ((b"\x80\x04not really a pickle", "not a PyTorch state dict"),
                      (_saved({"fc.weight": torch.zeros(3, 3)}), "not the FID Inception weights")):
        mirror(monkeypatch, server, body, path=f"/{len(body)}.pth", sha=hashlib.sha256(body).hexdigest())
        with pytest.raises(GenlabError, match=why):
            features.resolve_weights()
        assert_nothing_kept(hub)


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_a_transfer_cut_halfway_keeps_nothing(hub, server, pngs, monkeypatch, capsys):
    body = tiny_fid.weights_bytes()
    mirror(monkeypatch, server, body, sha=hashlib.sha256(body).hexdigest())
    server.drop_after["/w.pth"] = len(body) // 2  # Content-Length says all of it, then the server hangs up
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64"])
    assert f"after {len(body) // 2}" in line and "nothing was kept" in line
    assert_nothing_kept(hub)


def test_a_server_that_is_down_fails_fast_naming_the_url_and_the_place(hub, pngs, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: connections are refused
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"http://127.0.0.1:{port}/w.pth")
    t0 = time.perf_counter()
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64"])
    assert time.perf_counter() - t0 < 10
    assert "cannot reach the server" in line and f"http://127.0.0.1:{port}/w.pth" in line
    assert str(hub / OFFICIAL) in line
    assert_nothing_kept(hub)


def test_a_server_that_never_answers_times_out(hub, monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections (backlog), never answers
    try:
        monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/w.pth")
        monkeypatch.setattr(fid_weights, "TIMEOUT_S", 0.5)
        t0 = time.perf_counter()
        with pytest.raises(GenlabError, match=r"no answer within 0\.5 s"):
            features.resolve_weights()
        assert time.perf_counter() - t0 < 5
    finally:
        listener.close()
    assert_nothing_kept(hub)


def test_a_failed_download_is_tried_once_per_process_and_offline_never_tries(hub, server, monkeypatch):
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"{server.url}/gone.pth")
    for _ in range(2):
        with pytest.raises(GenlabError, match="HTTP 404"):
            features.resolve_weights()
    assert len(server.requests) == 1
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"{server.url}/other.pth")
    monkeypatch.setenv("GENLAB_OFFLINE", "1")
    with pytest.raises(GenlabError, match="GENLAB_OFFLINE is set"):
        features.resolve_weights()
    assert len(server.requests) == 1


def test_data_download_inception_fetches_ahead_for_an_offline_node(hub, server, pngs, monkeypatch, capsys):
    body = tiny_fid.weights_bytes()
    mirror(monkeypatch, server, body, sha=hashlib.sha256(body).hexdigest())
    monkeypatch.setenv("GENLAB_OFFLINE", "1")
    line = one_error_line(capsys, ["data", "download", "inception"])  # offline means never, even here
    assert "GENLAB_OFFLINE is set" in line and server.requests == []
    monkeypatch.delenv("GENLAB_OFFLINE")
    assert main(["data", "download", "inception"]) == 0
    assert str(hub / OFFICIAL) in capsys.readouterr().out.replace("\n", "")
    assert main(["fid", *pngs, "--dims", "64", "--offline"]) == 0  # the compute node: no network needed
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("FID:")
    assert len(server.requests) == 1


def test_the_offline_flag_never_downloads(hub, server, pngs, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"{server.url}/w.pth")
    line = one_error_line(capsys, ["fid", *pngs, "--dims", "64", "--offline"])
    assert "not found" in line and server.requests == []


def test_the_real_check_is_pytorch_fid_s_inception_state_dict():
    """The shapes a download must have are those pytorch-fid's FID network loads (strictly)."""
    expected = features.pytorch_fid_shapes()
    he = features.he_state_dict(0)
    assert {k: tuple(v.shape) for k, v in he.items()} == expected
    assert any(k.startswith("Mixed_7c.branch3x3dbl_3a") for k in expected) and len(expected) > 500
    features.FID_NETWORK.build(he, 64, "test")  # pytorch-fid's InceptionV3 accepts exactly these tensors


def test_two_processes_fetching_at_once_download_once_and_both_compute_the_fid(hub, server, pngs, monkeypatch):
    body = tiny_fid.weights_bytes()
    mirror(monkeypatch, server, body, sha=hashlib.sha256(body).hexdigest())
    server.gate = threading.Event()  # the first download hangs until the second process is waiting
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    code = ("import sys\nfrom tests.eval import tiny_fid\ntiny_fid.use()\nfrom genlab.cli import main\n"
            f"sys.exit(main(['fid', {pngs[0]!r}, {pngs[1]!r}, '--dims', '64']))")
    # both start together (importing torch is most of their time); the one that asks first is held
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs: list[list[str]] = [[], []]
    waiting = threading.Event()

    def read(i: int) -> None:
        for line in procs[i].stderr:
            errs[i].append(line)
            if "waiting for another process downloading" in line:
                waiting.set()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for t in readers:
        t.start()
    try:
        assert waiting.wait(timeout=120), errs  # one process is waiting on the other's download
        # the lock holder may reach the server a moment after the other saw its lock
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.requests) == 1 and not (hub / OFFICIAL).exists()
    finally:
        server.gate.set()
    outs = [p.stdout.read() for p in procs]
    codes = [p.wait(timeout=120) for p in procs]
    for t in readers:
        t.join(timeout=10)
    assert codes == [0, 0], errs
    assert outs[0].splitlines()[-1] == outs[1].splitlines()[-1] and outs[0].splitlines()[-1].startswith("FID:")
    assert len(server.requests) == 1  # one download for both
    assert sorted(p.name for p in hub.iterdir()) == [OFFICIAL] and (hub / OFFICIAL).read_bytes() == body


def test_training_falls_back_only_after_the_download_failed_and_says_why(hub, server, tmp_path, monkeypatch):
    import json

    from tests.train.test_gan_training import TINY, fake_bitmoji, tiny_extractor

    from genlab.config import load_config
    from genlab.data import registry
    from genlab.train import fid_callback
    from genlab.train.runner import train

    monkeypatch.setenv("GENLAB_FID_WEIGHTS_URL", f"{server.url}/gone.pth")
    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))
    # the fallback network itself is the tiny one (pytorch-fid's Inception would take minutes here)
    monkeypatch.setattr(fid_callback, "fallback_extractor", lambda real, **kwargs: tiny_extractor())
    cfg = load_config("dcgan-bitmoji-quick", [*TINY, f"output.runs_dir={tmp_path / 'runs'}", "trainer.max_epochs=1",
                                              "model.fid.n=16", "model.fid.final_n=16", "model.fid.batch_size=16"])
    with pytest.warns(UserWarning, match="HTTP 404.*Using the fallback extractor"):
        run = train(cfg)
    assert len(server.requests) == 1  # it did try to download first
    record = json.loads((run.eval / "fid.json").read_text())
    assert record["comparable_to_published_fid"] is False
    assert "HTTP 404" in record["fallback_reason"] and f"{server.url}/gone.pth" in record["fallback_reason"]
    assert "HTTP 404" in run.report.read_text()  # the report shows fid.json, the reason with it
