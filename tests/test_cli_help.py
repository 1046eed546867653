"""Every option of every subcommand says what it does and what its default is (issue 16)."""

import argparse

import pytest

from genlab.cli import Parser, build_parser, main


def all_parsers(parser: argparse.ArgumentParser, name: str = "genlab"):
    yield name, parser
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


PARSERS = list(all_parsers(build_parser()))


def test_the_walk_reaches_every_command():
    names = {name for name, _ in PARSERS}
    for command in ("train", "sample", "evaluate", "data info", "data download", "traverse", "report", "runs",
                    "codes", "prior", "prior-eval", "vqvae-sweep", "demo", "fid"):
        assert f"genlab {command}" in names


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_argument_has_help(name, parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the one-line summary of each subcommand
                assert choice.help and choice.help.strip(), f"{name} {choice.dest}: no help"
            continue
        assert action.help and action.help.strip(), f"{name} {'/'.join(action.option_strings) or action.dest}: no help"


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_option_shows_its_default(name, parser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.default == argparse.SUPPRESS or action.default is False:
            continue  # positionals, --help/--version, flags that are off unless given
        if action.required:
            continue  # nothing to default to
        rendered = formatter._expand_help(action)  # the text `--help` prints for it, %(default)s filled in
        label = f"{name} {'/'.join(action.option_strings)}"
        assert "default" in rendered.lower(), f"{label}: the help does not say the default"
        if action.default is not None:
            assert str(action.default) in rendered, f"{label}: default {action.default!r} not shown in {rendered!r}"


def test_defaults_appear_in_the_printed_help(capsys):
    # the real --help output of one command, against the values argparse itself holds
    sample = dict(PARSERS)["genlab sample"]
    defaults = {a.dest: a.default for a in sample._actions}
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {defaults['n']})" in text and f"(default: {defaults['seed']})" in text


def test_the_formatter_is_what_adds_the_default():
    # the check above is not vacuous: a stock argparse parser prints no default for the same option
    ours, stock = Parser(prog="x"), argparse.ArgumentParser(prog="x")
    for p in (ours, stock):
        p.add_argument("--budget", type=int, default=7, help="images per batch")
    assert "(default: 7)" in ours.format_help() and "7" not in stock.format_help()
    explained = Parser(prog="x")
    explained.add_argument("--n", type=int, default=None, help="samples (default: the config's eval.samples)")
    assert "None" not in explained.format_help()  # a None default is explained in words, never printed
