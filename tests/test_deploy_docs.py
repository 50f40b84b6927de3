"""Every `imi` command shown in docs/deploy.md exists, and every option it uses is one
that command accepts (checked against its --help)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def _commands() -> list[list[str]]:
    """Each `imi …` invocation in the doc's shell blocks, continuation lines joined."""
    text = DOC.read_text()
    found: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(">")[0].split("|")[0].strip()
            if line.startswith("imi "):
                found.append(line.split())
    return found


def _subcommand(words: list[str]) -> list[str]:
    path = []
    for word in words[1:]:
        if word.startswith(("-", "<")) or "/" in word or "." in word:
            break
        path.append(word)
    return path[:2]


def test_the_doc_shows_the_key_commands() -> None:
    shown = {" ".join(_subcommand(c)) for c in _commands()}
    assert {"node init", "key new", "key public", "genesis new", "ledger genesis", "ledger audit",
            "gov validator-add", "gov validator-remove"} <= shown


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w[:3]))
def test_each_documented_command_and_option_exists(words: list[str]) -> None:
    path = _subcommand(words)
    result = CliRunner().invoke(cli_app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in (w for w in words if w.startswith("--")):
        assert option in result.output, f"{' '.join(path)} has no {option}"
