"""The report in a real browser: headless Chromium (Debian's `chromium`) loads the page of a tiny
trained run, every <img> must have loaded (naturalWidth > 0), the epoch slider must work, and a
screenshot is saved to $GENLAB_ARTIFACTS (default: the test's tmp folder).

CI installs chromium in .ci/run; elsewhere the test is skipped with the reason."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run installs it in CI)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

# Injected into a copy of the page: after `load`, report which images failed, then move the first
# slider to frame 0 and report which frame is visible. A deliberately broken image checks the check.
PROBE = """
<img id="probe-broken" src="does-not-exist.png" alt="">
<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.getAttribute("src"); });
  var slider = document.querySelector(".slider"), visible = null;
  if (slider) {
    var input = slider.querySelector("input");
    input.value = 0;
    input.dispatchEvent(new Event("input"));
    visible = Array.from(slider.querySelectorAll(".frame")).map(function (f) { return !f.hidden; });
  }
  var out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({n: imgs.length, bad: bad, visible: visible,
                                    label: slider ? slider.querySelector(".label").textContent : null});
  document.body.appendChild(out);
});
</script>
"""


def chromium(*args: str, profile: Path) -> str:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    # a guard against a hung browser, not a speed requirement
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_image_loads_in_chromium(tiny_run, tmp_path):
    page = tiny_run.report
    source = page.read_text()
    n_images = len(re.findall(r"<img\b", source))
    assert n_images >= 5
    probe = page.with_name("report_probe.html")
    probe.write_text(source.replace("</body>", PROBE + "</body>"))
    try:
        dom = chromium("--virtual-time-budget=20000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p1")
    finally:
        probe.unlink()
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run"
    result = json.loads(html.unescape(found.group(1)))
    assert result["n"] == n_images + 1
    assert result["bad"] == ["does-not-exist.png"]  # only the planted broken image failed
    frames = len(list(tiny_run.samples.glob("epoch_*.png")))
    assert result["visible"] == [True] + [False] * (frames - 1) and result["label"] == "epoch 1"


def test_screenshot_of_the_report(tiny_run, tmp_path):
    from PIL import Image

    folder = Path(os.environ.get("GENLAB_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report_screenshot.png"
    chromium("--window-size=1200,2400", "--virtual-time-budget=20000", f"--screenshot={shot}",
             tiny_run.report.as_uri(), profile=tmp_path / "p2")
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 2400)
    lo, hi = image.getextrema()
    assert hi - lo > 100  # something was drawn, not a blank page
