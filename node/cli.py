"""The ``cinestrain`` command line: one sub-command per module in :mod:`node.commands`.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the process exit status). Library code logs; only commands print.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from config import __version__

#: sub-command name -> module implementing it
COMMANDS: dict[str, str] = {
    "config": "node.commands.config",
    "inspect": "node.commands.inspect",
    "phantom": "node.commands.phantom",
    "analyze": "node.commands.analyze",
    "train": "node.commands.train",
    "serve": "node.commands.serve",
    "status": "node.commands.status",
    "echo": "node.commands.echo",
    "retry": "node.commands.retry",
    "view": "node.commands.view",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cinestrain",
        description="Myocardial motion and strain from cine cardiac MR, as a DICOM node.",
    )
    parser.add_argument("--version", action="version", version=f"cinestrain {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def setup_logging(verbosity: int) -> None:
    """Log to stderr; warnings by default, info with -v, debug with -vv."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cinestrain`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    return int(args._run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
