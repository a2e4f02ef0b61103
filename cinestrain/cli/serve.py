"""``cinestrain serve``: run the DICOM node in the foreground until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinestrain.config import ConfigError, load_config
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
    from cinestrain.inference.model.shipped_weights import missing_weights
    from cinestrain.node.service import Node, configure_logging

    try:
        cfg = load_config(args.config)
        if args.allow_caller:
            callers = list(cfg.node.allowed_callers) + [
                AllowedCaller(ae_title=ae) for ae in args.allow_caller
                if ae not in {c.ae_title for c in cfg.node.allowed_callers}
            ]
            node = cfg.node.model_copy(update={"allowed_callers": callers})
            cfg = cfg.model_copy(update={"node": node})
    except (ConfigError, ValueError) as exc:
        print(f"cinestrain serve: {exc}", file=sys.stderr)
        return 1
    problem = missing_weights(cfg.model.temporal, cfg.model.weights)
    if problem is not None:  # every job would fail: refuse to start instead
        print(f"cinestrain serve: model: {problem}", file=sys.stderr)
        return 1
    configure_logging(cfg.logging, args.verbose)
    node = Node(cfg)
    try:
        node.serve_forever()
    except OSError as exc:
        print(f"cinestrain serve: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
