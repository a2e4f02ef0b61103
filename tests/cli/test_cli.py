"""The command line: every command is reachable, and the node's own commands stay light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cinestrain.cli.main import COMMANDS, build_parser, chosen_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_its_options(name: str) -> None:
    parser = build_parser(name)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args([name, "--help"])
    assert stop.value.code == 0


def test_the_command_is_the_first_word_that_is_not_an_option() -> None:
    assert chosen_command(["-v", "analyze", "in", "--out", "x"]) == "analyze"
    assert chosen_command(["status", "--json"]) == "status"
    assert chosen_command(["--version"]) is None
    assert chosen_command(["bogus", "serve"]) is None  # argparse then names the bad word


def test_node_commands_do_not_load_torch() -> None:
    # The node's long-running process (serve) and an admin's status / jobs / send / echo / retry /
    # config check have no use for PyTorch (270 MB, seconds to import); only the model
    # commands, and the worker process, load it.
    light = ("config", "serve", "status", "jobs", "send", "echo", "retry", "inspect", "view")
    example = ROOT / "cinestrain" / "config" / "example.toml"
    code = (
        "import sys\n"
        "from cinestrain.cli.main import build_parser, main\n"
        f"for name in {light!r}:\n"
        "    build_parser(name)\n"
        f"assert main(['config', 'check', {str(example)!r}]) == 0\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr
