"""The ``cinestrain`` command line: one sub-command per module in :mod:`cli`.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the
process exit status); its one-line help lives here, so that only the module of the
command being run is imported: ``serve``, ``status`` or ``echo`` never load PyTorch
(which the model commands need): the node's main process stays small and an admin's
``cinestrain status`` answers at once. Library code logs; only commands print.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cinestrain import __version__

#: sub-command name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("cinestrain.cli.config",
               "validate a configuration file and print the effective configuration"),
    "inspect": ("cinestrain.cli.inspect",
                "list the series and cine stacks in a folder of DICOM files, and their problems"),
    "phantom": ("cinestrain.cli.phantom",
                "write synthetic cine short-axis MR studies with exact ground-truth motion "
                "and strain"),
    "analyze": ("cinestrain.cli.analyze",
                "myocardial motion, strain and LV function of the cine stack in a folder"),
    "train": ("cinestrain.cli.train",
              "train the motion model on phantom data (seeded, resumable, JSON loss log)"),
    "serve": ("cinestrain.cli.serve",
              "run the DICOM node (SCP, scheduler, worker, export) in the foreground"),
    "status": ("cinestrain.cli.status",
               "show received stacks, jobs by state, exports, failures and disk use"),
    "echo": ("cinestrain.cli.echo",
             "C-ECHO a configured DICOM destination (by name) to test the connection"),
    "retry": ("cinestrain.cli.retry",
              "send a job's results to every destination again; a failed job is run again"),
    "view": ("cinestrain.cli.view",
             "local OHIF viewer (Orthanc DICOMweb + nginx) on loopback; --send files to it"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser, every sub-command listed with its help.

    Only ``command``'s module is imported and its options registered; the others are
    never parsed in this run (``None``: none, for the top-level help or a usage error).
    """
    parser = argparse.ArgumentParser(
        prog="cinestrain",
        description="Myocardial motion and strain from cine cardiac MR, as a DICOM node.",
    )
    parser.add_argument("--version", action="version", version=f"cinestrain {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def setup_logging(verbosity: int) -> None:
    """Log to stderr; warnings by default, info with -v, debug with -vv."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cinestrain`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    return int(args._run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
