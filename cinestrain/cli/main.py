"""The ``cinestrain`` command line: one sub-command per module in :mod:`cli`.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the
process exit status); its one-line help lives here, so that only the module of the
command being run is imported: ``serve``, ``status`` or ``echo`` never load PyTorch
(which the model commands need): the node's main process stays small and an admin's
``cinestrain status`` answers at once. Library code logs; only commands print.

Exit statuses are the same for every command (:mod:`cli.common`): 0 done, 1 not done,
2 usage or configuration error (a :class:`config.ConfigError` or
:class:`cli.common.UsageError` a command raises is printed here), 130 after Ctrl-C, and
a one-shot command stopped by SIGTERM prints "stopped" and exits 143 (``serve`` and
``view`` handle SIGTERM as their requested stop: 0).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from types import FrameType

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
               "show received stacks, the newest jobs with their results folders and "
               "exports, failures and disk use"),
    "jobs": ("cinestrain.cli.jobs",
             "jobs show ID: one job's request, state, timings, error, files and exports"),
    "echo": ("cinestrain.cli.echo",
             "C-ECHO a configured DICOM destination (by name) to test the connection"),
    "send": ("cinestrain.cli.send",
             "send a done job's results to every destination configured now, or those "
             "named"),
    "retry": ("cinestrain.cli.retry",
              "run a failed job again; send a done job's results again to every "
              "destination configured now"),
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
    """Log to stderr as text; warnings by default, info with -v, debug with -vv (the one
    set-up of :mod:`logs`, which ``serve`` configures again from its ``[logging]``)."""
    from cinestrain.config.schema import LoggingSection
    from cinestrain.logs import configure_logging

    configure_logging(LoggingSection(level="WARNING"), verbosity)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    from cinestrain.cli.common import Terminated

    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cinestrain`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(chosen_command(argv))
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while a command's module imports
        print("cinestrain: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    from cinestrain.cli.common import INTERRUPTED, TERMINATED, USAGE, Terminated, UsageError
    from cinestrain.config import ConfigError

    name = f"cinestrain {args.command}"
    try:
        previous = signal.signal(signal.SIGTERM, _terminate) or signal.SIG_DFL
    except ValueError:  # not the main thread (a test calling main): leave SIGTERM alone
        previous = None
    try:
        setup_logging(args.verbose)
        return int(args._run(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f"{name}: stopped (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print(f"{name}: stopped (SIGTERM)", file=sys.stderr)
        return TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
