"""``cinestrain serve``: run the DICOM node in the foreground until SIGTERM / Ctrl-C.

Exit status: 0 when stopped by SIGTERM (systemd's stop), 130 by Ctrl-C (SIGINT), 1 when
it cannot start (the port is taken), 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from cinestrain.cli.common import DONE, FAILED, INTERRUPTED, UsageError, fail, load_node_config
from cinestrain.config.schema import AllowedCaller


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "--config", type=Path, metavar="PATH",
        help="TOML configuration (default: $CINESTRAIN_CONFIG, else the embedded defaults)",
    )
    parser.add_argument(
        "--allow-caller", action="append", default=[], metavar="AE",
        help="also accept this calling AE title from any host (repeatable; e.g. STORESCU "
        "for a local test with DCMTK storescu)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the configuration, start the node, serve until a signal."""
    from cinestrain.node.service import Node, configure_logging

    # a missing model file would fail every job: a configuration error, refused at once
    cfg = load_node_config(args.config, weights=True)
    if args.allow_caller:
        try:
            extra = [AllowedCaller(ae_title=ae) for ae in args.allow_caller
                     if ae not in {c.ae_title for c in cfg.node.allowed_callers}]
        except ValueError as exc:
            raise UsageError(f"--allow-caller: {exc}") from exc
        node = cfg.node.model_copy(
            update={"allowed_callers": [*cfg.node.allowed_callers, *extra]})
        cfg = cfg.model_copy(update={"node": node})
    configure_logging(cfg.logging, args.verbose)
    node = Node(cfg)
    try:
        node.serve_forever()
    except OSError as exc:
        return fail("serve", f"cannot start: {exc}", FAILED)
    return INTERRUPTED if node.stop_signal == signal.SIGINT else DONE
