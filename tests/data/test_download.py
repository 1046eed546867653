"""The downloader against a local HTTP server on 127.0.0.1 that supports Range requests and can
drop the connection half-way: full download, resume of an interrupted one, wrong checksum,
extraction, and the Tiny-ImageNet download end to end (on a small archive made here)."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest
from rich.console import Console
from tests.data.test_images import _private_cache, tiny_root  # noqa: F401 (fixtures)

from genlab.data.download import extract, fetch
from genlab.data.info import _download_tinyimagenet
from genlab.data.layouts import index_tinyimagenet
from genlab.errors import GenlabError


class Server:
    """Serves `files` (path -> bytes). `drop_after[path] = n` cuts the next response to it after
    n body bytes; `ignore_range` answers 200 with the whole file; `requests` records
    (path, Range header) of every request; `gate`, when set to an Event, holds every body until it is set."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.gate: threading.Event | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                ranged = self.headers.get("Range")
                if ranged and not server.ignore_range:
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if server.gate is not None:
                    server.gate.wait(timeout=60)
                cut = server.drop_after.pop(self.path, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # stored: big enough to cut in half
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return buf.getvalue()


@pytest.fixture
def payload(tiny_root) -> bytes:
    return _archive(tiny_root)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_download_verifies_and_renames(server, payload, tmp_path):
    server.files["/t.zip"] = payload
    dest = fetch(f"{server.url}/t.zip", tmp_path / "t.zip", sha256=sha(payload), progress=False)
    assert dest.read_bytes() == payload and not (tmp_path / "t.zip.part").exists()
    assert server.requests == [("/t.zip", None)]
    fetch(f"{server.url}/t.zip", dest, sha256=sha(payload), progress=False)  # verified file: no request
    assert len(server.requests) == 1


def test_partial_file_from_an_earlier_run_is_resumed_with_range(server, payload, tmp_path):
    server.files["/t.zip"] = payload
    half = len(payload) // 2
    (tmp_path / "t.zip.part").write_bytes(payload[:half])
    dest = fetch(f"{server.url}/t.zip", tmp_path / "t.zip", md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("/t.zip", f"bytes={half}-")]  # only the missing half was sent


def test_dropped_connection_resumes_within_the_call_or_on_the_next(server, payload, tmp_path):
    server.files["/t.zip"] = payload
    cut = len(payload) // 3
    server.drop_after["/t.zip"] = cut
    dest = fetch(f"{server.url}/t.zip", tmp_path / "t.zip", sha256=sha(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("/t.zip", None), ("/t.zip", f"bytes={cut}-")]

    server.requests.clear()
    server.drop_after["/t.zip"] = cut
    with pytest.raises(GenlabError, match=r"interrupted after \d+ bytes.*run the same command again to resume"):
        fetch(f"{server.url}/t.zip", tmp_path / "u.zip", sha256=sha(payload), progress=False, retries=0)
    assert (tmp_path / "u.zip.part").stat().st_size == cut and not (tmp_path / "u.zip").exists()
    fetch(f"{server.url}/t.zip", tmp_path / "u.zip", sha256=sha(payload), progress=False)
    assert (tmp_path / "u.zip").read_bytes() == payload and server.requests[-1] == ("/t.zip", f"bytes={cut}-")


def test_wrong_checksum_deletes_the_partial_file_and_leaves_no_destination(server, payload, tmp_path):
    server.files["/t.zip"] = payload
    with pytest.raises(GenlabError, match=r"checksum mismatch \(sha256 [0-9a-f]{64}, expected 0{64}\)"):
        fetch(f"{server.url}/t.zip", tmp_path / "t.zip", sha256="0" * 64, progress=False)
    assert not (tmp_path / "t.zip").exists() and not (tmp_path / "t.zip.part").exists()


def test_server_ignoring_range_restarts_cleanly_and_404_is_clear(server, payload, tmp_path):
    server.files["/t.zip"] = payload
    server.ignore_range = True
    (tmp_path / "t.zip.part").write_bytes(b"stale bytes from somewhere else")
    assert fetch(f"{server.url}/t.zip", tmp_path / "t.zip", sha256=sha(payload), progress=False).read_bytes() == payload
    with pytest.raises(GenlabError, match=r"/missing\.zip: HTTP 404"):
        fetch(f"{server.url}/missing.zip", tmp_path / "m.zip", progress=False)


def test_extract_refuses_paths_outside_the_destination(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(GenlabError, match="refusing to extract '../outside.txt'"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists() and list((tmp_path / "out").iterdir()) == []
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(GenlabError, match="not a zip or tar archive"):
        extract(tmp_path / "junk.zip", tmp_path / "out")


def test_tinyimagenet_download_end_to_end(server, payload, tmp_path):
    server.files["/tiny-imagenet-200.zip"] = payload
    console = Console(file=io.StringIO())
    base = tmp_path / "data"
    folder = _download_tinyimagenet(base, console, url=f"{server.url}/tiny-imagenet-200.zip",
                                    md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert folder == base / "tiny-imagenet-200" and not (base / "tiny-imagenet-200.zip").exists()
    assert len(index_tinyimagenet(base).files) == 18
    assert [p.name for p in base.iterdir()] == ["tiny-imagenet-200"]  # no temporary folder left
    _download_tinyimagenet(base, console, url=f"{server.url}/tiny-imagenet-200.zip")  # already there
    assert len(server.requests) == 1
