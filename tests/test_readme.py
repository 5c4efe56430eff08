"""Every allocopt command the README shows runs as shown."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from allocopt.cli import cli
from tests.conftest import ROOT


def readme_commands() -> list[str]:
    """The allocopt commands in the README's sh blocks, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("allocopt "):
                    commands.append(part)
    return commands


def test_readme_has_the_two_setup_commands_first() -> None:
    """The README opens with the install-and-run command and the test command."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[2] == "```sh"
    assert "pip install ." in lines[3] and "allocopt solve instances/" in lines[3]
    assert "pytest" in lines[4]
    assert lines[5] == "```"


def test_readme_commands_run_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each README command in order in a scratch folder holding the shipped instances."""
    shutil.copytree(ROOT / "instances", tmp_path / "instances")
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) >= 5
    for command in commands:
        args = shlex.split(command)[1:]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, f"{command}\n{result.output}"
    assert os.path.exists("tiny.solution.json")
