"""The README runs: every ``python`` block executes, and every ``retroscope ...`` command it
shows parses with the options it uses (the command line's own parser, nothing executed)."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from retroscope.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[str]:
    """Every ``retroscope`` command line of the bash blocks, continuation lines joined and
    comments removed."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["retroscope"]:
                out.append(words)
    return out


@pytest.mark.parametrize("code", _blocks("python"), ids=lambda c: c.splitlines()[-1][:40])
def test_python_block_runs(code):
    exec(compile(code, str(README), "exec"), {})


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w[1:3]))
def test_command_parses(words):
    """Walk down the command groups (``retroscope``, ``retroscope clouds``) to the command and
    parse its arguments as click does: unknown options, missing required ones and wrong types
    fail here; nothing runs."""
    command = typer.main.get_command(app)
    ctx = command.make_context("retroscope", [], resilient_parsing=True)
    args = list(words[1:])
    while hasattr(command, "get_command"):  # a command group
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in: {' '.join(words)}"
        command = sub
        if hasattr(command, "get_command"):
            ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    command.make_context(words[-1], args, parent=ctx)


def test_the_readme_shows_commands():
    assert len(_commands()) >= 10


def test_the_readme_names_nothing_outside_the_repository():
    """A user has the repository, nothing beside it: no ``../`` paths, and every file or
    folder the README points into (``docs/``, ``examples/``, ``benchmarks/`` ...) exists."""
    text = README.read_text()
    assert "../" not in text
    root = README.parent
    for path in set(re.findall(r"`((?:docs|examples|benchmarks|src|tests)/[\w./-]+)`", text)):
        assert (root / path.rstrip("/")).exists(), f"README points at missing {path}"
