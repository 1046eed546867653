"""The HTML report, from a tiny run trained for real: sections, links, embedding, comparison."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from tests.conftest import tiny_images

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.viz.report import write_report
from genlab.viz.tables import to_blocks


class Page(HTMLParser):
    """The <img> sources, the section headings and the text of a report."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in_heading = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_heading = tag in ("h2", "h3", "h4")
        if self._in_heading:
            self.headings.append("")

    def handle_endtag(self, tag):
        if tag in ("h2", "h3", "h4"):
            self._in_heading = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self.headings[-1] += data.strip()

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def read(page: Path) -> Page:
    return Page(page.read_text())


def assert_links_resolve(page: Path, parsed: Page) -> None:
    for src in parsed.images:
        assert not src.startswith(("http:", "https:", "//")), src  # no network
        if not src.startswith("data:"):
            assert (page.parent / unquote(src)).is_file(), src


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Run:
    """A private copy of the trained run that a test may add files to."""
    return Run(Path(shutil.copytree(tiny_run.path, tmp_path / "runs" / "tiny")))


def add_loglik(run: Run) -> dict:
    """A real log-likelihood table (LoglikTable.save), as `genlab evaluate --loglik` writes it."""
    from genlab.eval.likelihood import loglik_table
    from genlab.train.loading import load_module

    net = load_module(run.path).net
    x = tiny_images("val").tensors[0][:3]
    loglik_table(net, x, [0, 1, 2], estimators=("is",), samples=16).save(run.eval / "loglik.json")
    return json.loads((run.eval / "loglik.json").read_text())


# --- the report a training run writes ----------------------------------------------------------
def test_training_writes_a_report_with_its_grids_and_curves(tiny_run):
    page = tiny_run.report
    assert page.is_file()
    parsed = read(page)
    assert_links_resolve(page, parsed)
    sources = {unquote(s) for s in parsed.images}
    # every per-epoch grid the run wrote is on the page (one slider frame each), and the curves
    for folder in ("samples", "reconstructions", "plots"):
        files = sorted((tiny_run.path / folder).glob("*.png"))
        assert files, folder
        assert {f"{folder}/{f.name}" for f in files} <= sources
    assert len(list(tiny_run.samples.glob("epoch_*.png"))) == 2
    for heading in ("Config", "Metrics", "Samples through training", "Curves"):
        assert heading in parsed.headings
    assert "finished" in parsed.all_text and "val/elbo" in parsed.all_text
    assert "Latent traversals and interpolations" not in parsed.headings  # a VAE run has none


def test_metrics_table_matches_metrics_csv(tiny_run):
    import csv

    with open(tiny_run.metrics_path) as fh:  # independent read: the val/elbo row of each epoch
        val = {int(r["epoch"]) + 1: float(r["val/elbo"]) for r in csv.DictReader(fh) if r["val/elbo"]}
    text = read(tiny_run.report).all_text
    best = max(val, key=val.get)
    for epoch, value in val.items():
        shown = f"{value:.1f}" if abs(value) >= 1e4 else f"{value:.5g}"
        assert (shown + " ★" if epoch == best else shown) in text


# --- eval tables, generically ------------------------------------------------------------------
def test_loglik_and_any_eval_json_are_rendered(run_copy):
    table = add_loglik(run_copy)
    (run_copy.eval / "vqvae_codebooks.json").write_text(json.dumps(
        [{"codebook_size": k, "perplexity": k * 0.75, "mse": 0.001 * k} for k in (128, 256, 512)]))
    (run_copy.eval / "broken.json").write_text("{not json")
    page = write_report([run_copy.path])
    parsed = read(page)
    text = parsed.all_text
    assert "Log-likelihood (eval/loglik.json)" in parsed.headings
    assert parsed.headings.index("Log-likelihood (eval/loglik.json)") < parsed.headings.index(
        "vqvae codebooks (eval/vqvae_codebooks.json)")
    for row in table["images"]:  # value and standard error in one cell, as the JSON has them
        est = row["is"]
        assert f"{est['log_px']:.1f} ± {est['se']:.5g}" in text
        assert f"{est['bits_per_dim']:.5g} ± {est['bits_per_dim_se']:.5g}" in text
    assert table["convention"] in text
    for k in (128, 256, 512):
        assert f"{k * 0.75:.5g}" in text
    assert "could not read" in text and "broken.json" in text  # a bad file is a note, not a crash


def test_json_to_blocks_shapes():
    rows = to_blocks([{"k": 1, "est": {"log_px": -10.0, "se": 0.5, "acceptance": None}, "x": 2.0, "x_se": 0.1}])
    assert len(rows) == 1 and rows[0].kind == "table"
    assert rows[0].columns == ["k", "est.log_px ± se", "x ± se"]  # all-None column dropped, se paired
    assert [c.text for c in rows[0].rows[0]] == ["1", "-10 ± 0.5", "2 ± 0.1"]

    columns = to_blocks({"image": [0, 1, 2], "log_px": [-1.0, -2.0, -3.0], "note": "n"})
    assert [b.kind for b in columns] == ["kv", "table"]
    assert columns[1].columns == ["image", "log_px"] and len(columns[1].rows) == 3

    fid = to_blocks({"extractor": "inception", "best": {"epoch": 4, "fid": 131.7},
                     "history": [{"epoch": 0, "fid": 200.0}, {"epoch": 4, "fid": 131.7}]})
    assert [(b.title, b.kind) for b in fid] == [("", "kv"), ("history", "table"), ("best", "kv")]

    named = to_blocks({"gmm": {"nll": 1.5}, "vae": {"nll": 1.2, "latent": 16}})
    assert named[0].columns == ["", "nll", "latent"] and [c.text for c in named[0].rows[1]] == ["vae", "1.2", "16"]


# --- self-contained, several runs, missing sections ----------------------------------------------
def test_embedded_report_is_one_file(tiny_run, tmp_path):
    page = write_report([tiny_run.path], out=tmp_path / "shared" / "tiny.html", embed=True)
    parsed = read(page)
    assert parsed.images and all(s.startswith("data:image/png;base64,") for s in parsed.images)
    last = sorted(tiny_run.samples.glob("epoch_*.png"))[-1].read_bytes()
    assert any(base64.b64decode(s.split(",", 1)[1]) == last for s in parsed.images)
    assert list((tmp_path / "shared").iterdir()) == [page]


def test_comparison_puts_runs_in_one_table_and_on_the_same_axes(tiny_run, run_copy, tmp_path):
    cfg = yaml.safe_load(run_copy.config_path.read_text())
    cfg["optimizer"]["lr"] = 0.0005
    run_copy.config_path.write_text(yaml.safe_dump(cfg))
    run_copy.set_status("interrupted", message="stopped by hand")
    out = tmp_path / "cmp"
    assert main(["report", str(tiny_run.path), str(run_copy.path), "--out", str(out)]) == 0
    page = out / "report.html"
    parsed = read(page)
    assert_links_resolve(page, parsed)
    assert (out / "report_assets" / "compare_curves.png").is_file()
    assert all(unquote(s).startswith("report_assets/") for s in parsed.images)  # copied beside the page
    assert "Comparison" in parsed.headings and "config differences" in parsed.headings
    text = parsed.all_text
    assert "optimizer.lr" in text and "0.0005" in text and "interrupted" in text
    assert parsed.headings.count("Samples through training") == 2


def test_sections_are_skipped_when_their_files_are_absent(tmp_path):
    from genlab.config import load_config

    run = Run.create(load_config("vae-dsprites-quick", [f"output.runs_dir={tmp_path}", "output.run_name=empty"]))
    page = write_report([run.path])
    parsed = read(page)
    assert parsed.images == []
    assert "Config" in parsed.headings and "Metrics" not in parsed.headings
    assert "Samples through training" not in parsed.headings


def test_report_of_something_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(GenlabError, match="not a genlab run directory"):
        write_report([tmp_path])
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "error" in capsys.readouterr().out

