"""``cinestrain config``: validate a configuration file and show what the node will use.

``config check`` exits 2 when the file is invalid or names a missing model file, like
every command given a bad configuration (:mod:`cli.common`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tomli_w

from cinestrain.cli.common import load_node_config
from cinestrain.config import default_config_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate PATH (default: $CINESTRAIN_CONFIG, else the embedded defaults) "
        "and print the effective configuration, defaults filled in",
    )
    check.add_argument("path", nargs="?", type=Path, help="TOML configuration file")
    check.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    sub.add_parser(
        "default",
        help="print the embedded default file, every key commented "
        "(e.g. cinestrain config default > /etc/cinestrain/node.toml)",
    )


def _without_none(value: object) -> object:
    """TOML has no null: drop unset optional keys from the printed configuration."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    if args.config_command == "default":
        sys.stdout.write(default_config_path().read_text(encoding="utf-8"))
        return 0
    cfg = load_node_config(args.path, weights=True)  # invalid: main prints it, exit 2
    effective = cfg.model_dump(mode="json")
    if args.json:
        print(json.dumps(effective, indent=2))
    else:
        source = args.path or "(defaults or $CINESTRAIN_CONFIG)"
        print(f"# {source}: valid. Effective configuration:")
        sys.stdout.write(tomli_w.dumps(_without_none(effective)))
    return 0
