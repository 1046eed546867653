"""Values a user types are checked where they enter (issue 24): every numeric option of every
subcommand has a range, and 0, -1 and an absurdly large value outside it are refused in one line
with exit status 2, before anything loads. Plus the seven values the issue found uncaught."""

from __future__ import annotations

import argparse

import pytest
from tests.test_cli_help import PARSERS

from genlab import arg_types
from genlab.cli import build_parser, main
from genlab.config import build_config
from genlab.errors import GenlabError
from genlab.runs import Run

TRIED = (0, -1, 10**18)
RANGES = (arg_types.IntRange, arg_types.FloatRange)


def command_path(name: str) -> list[str]:
    return name.split()[1:]  # "genlab data info" -> ["data", "info"]


def required_args(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for a sub-command's positionals and required options."""
    out: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.nargs not in ("?", "*", argparse.PARSER, argparse.REMAINDER):
            out.append("x")
        elif action.option_strings and action.required:
            out += [action.option_strings[0], str(next(iter(action.choices)) if action.choices else "x")]
    return out


NUMERIC = [(name, parser, action) for name, parser in PARSERS for action in parser._actions
           if action.option_strings and (action.type in (int, float) or isinstance(action.type, RANGES))]
IDS = [f"{name} {action.option_strings[0]}" for name, _, action in NUMERIC]


def test_the_walk_finds_the_numeric_options():
    found = set(IDS)
    for option in ("genlab sample --n", "genlab evaluate --n-images", "genlab evaluate --samples",
                   "genlab traverse --span", "genlab prior --max-minutes", "genlab fid --batch-size"):
        assert option in found


@pytest.mark.parametrize("name,parser,action", NUMERIC, ids=IDS)
def test_every_numeric_option_has_a_range_and_refuses_values_outside_it(name, parser, action, capsys):
    assert isinstance(action.type, RANGES), f"{name} {action.option_strings[0]}: a bare {action.type} takes any value"
    rng = action.type
    option = action.option_strings[0]
    base = [*command_path(name), *required_args(parser)]
    for value in TRIED:
        argv = [*base, option, str(value)]
        inside = rng.lo <= value <= rng.hi if isinstance(rng, arg_types.IntRange) else rng.lo < value <= rng.hi
        if inside and (not action.choices or value in action.choices):
            assert getattr(build_parser().parse_args(argv), action.dest) in (value, [value])  # accepted as typed
            continue
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = captured.out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], (argv, captured.out)
        assert "Traceback" not in captured.out + captured.err


# --- the seven values of the issue ------------------------------------------------------------------
@pytest.fixture
def run_dir(tmp_path) -> str:
    """A run directory (its config) with no checkpoint: a value must be refused before anything loads."""
    cfg = build_config({"output": {"runs_dir": str(tmp_path), "run_name": "r"}})
    return str(Run.create(cfg).path)


@pytest.mark.parametrize("argv,option", [
    (["sample", "{run}", "--n", "-5"], "--n"),
    (["sample", "{run}", "--n", "0"], "--n"),
    (["evaluate", "{run}", "--loglik", "--n-images", "0"], "--n-images"),
    (["evaluate", "{run}", "--loglik", "--n-images", "-3"], "--n-images"),
    (["evaluate", "{run}", "--loglik", "--samples", "0"], "--samples"),
    (["report", "{run}", "--out", "/proc/none"], "/proc/none"),
])
def test_the_issues_typed_values_are_one_line_exit_2(run_dir, argv, option, capsys):
    assert main([a.format(run=run_dir) for a in argv]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in lines[0], lines


def test_an_image_size_the_network_cannot_take_is_a_config_error(capsys):
    assert main(["train", "vae-dsprites-quick", "data.image_size=7"]) == 2
    out = capsys.readouterr().out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert "data.image_size=7" in out and "multiple of 32" in out
    for model, size in (("dcgan", 48), ("vqvae", 33)):  # each model says which sizes it takes
        with pytest.raises(GenlabError, match=f"data.image_size={size} does not fit model '{model}'"):
            build_config({"model": {"name": model}, "data": {"image_size": size}})
    build_config({"model": {"name": "vqvae"}, "data": {"image_size": 16}})  # and accepts the ones it can


def test_the_library_refuses_the_same_counts(run_dir):
    from genlab.evaluate import evaluate_loglik
    from genlab.sampling import sample_grid

    with pytest.raises(GenlabError, match="n=0"):
        sample_grid(run_dir, n=0)
    for kw in ({"n_images": 0}, {"n_images": -3}, {"samples": 0}):
        with pytest.raises(GenlabError, match="must be at least 1"):
            evaluate_loglik(run_dir, **kw)


def test_an_unwritable_output_is_refused_and_a_new_folder_is_fine(tmp_path):
    ok = tmp_path / "new" / "deeper" / "report.html"
    assert arg_types.writable_output(str(ok)) == str(ok) and not (tmp_path / "new").exists()  # nothing created
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a folder"):
        arg_types.writable_output(str(blocker / "out.png"))
