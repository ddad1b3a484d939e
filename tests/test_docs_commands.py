"""Every ``d2sp`` command line shown in README.md and docs/ parses: its subcommand exists and
each of its options is one that subcommand takes, with a value of the right type (the
command is parsed, not run), so the docs cannot drift from the CLI."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from d2sp.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands() -> list[tuple[str, str]]:
    """``(file:line, command)`` for every line of a fenced code block that runs ``d2sp``."""
    out = []
    for path in DOCS:
        fenced, held = False, ""
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced, held = not fenced, ""
                continue
            text = held + line.split(" #", 1)[0].strip()
            held = text[:-1] + " " if text.endswith("\\") else ""  # a continued line
            if fenced and not held and re.match(r"^d2sp \w", text):
                out.append((f"{path.relative_to(ROOT)}:{number}", text))
    return out


COMMANDS = shown_commands()


def test_the_docs_show_commands_of_every_kind():
    names = {shlex.split(c)[1] for _, c in COMMANDS}
    assert {"train", "demo", "evaluate", "predict", "export", "report", "compare", "check"} <= names


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_shown_command_parses(where, command):
    group = typer.main.get_command(app)
    name, *rest = shlex.split(command)[1:]
    sub = group.commands.get(name)
    assert sub is not None, f"{where}: no command {name!r} (commands: {', '.join(group.commands)})"
    try:
        sub.make_context(name, rest)
    except typer.TyperException as e:  # (a usage error)
        pytest.fail(f"{where}: {command!r}: {getattr(e, 'format_message', e.__str__)()}")
