"""``cinestrain echo DEST``: C-ECHO a configured destination (a DICOMweb one: a QIDO-RS
query)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinestrain.cli.common import load_node_config
from cinestrain.config import DicomDestination, DicomWebDestination


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("destination", metavar="DEST", help="destination name in the config")
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")


def run(args: argparse.Namespace) -> int:
    """Echo; 0 on success, 1 on failure, 2 when the destination is unknown."""
    from cinestrain.node.errors import ExportError
    from cinestrain.node.export import echo

    cfg = load_node_config(args.config)
    dest = next((d for d in cfg.destinations if d.name == args.destination), None)
    if dest is None:
        names = ", ".join(d.name for d in cfg.destinations) or "none configured"
        print(f"cinestrain echo: no destination {args.destination!r} ({names})", file=sys.stderr)
        return 2
    if isinstance(dest, DicomWebDestination):
        return _check_dicomweb(dest)
    if not isinstance(dest, DicomDestination):
        print(f"cinestrain echo: {dest.name} is a {dest.kind} destination, not DICOM",
              file=sys.stderr)
        return 2
    try:
        status = echo(dest, cfg)
    except ExportError as exc:
        print(f"cinestrain echo: {exc}", file=sys.stderr)
        return 1
    target = f"{dest.ae_title}@{dest.host}:{dest.port}"
    if status != 0:
        print(f"cinestrain echo: {target} answered 0x{status:04X}", file=sys.stderr)
        return 1
    print(f"{dest.name}: C-ECHO to {target} succeeded")
    return 0


def _check_dicomweb(dest: DicomWebDestination) -> int:
    """A one-study QIDO-RS query: 0 when the server answers it, 1 otherwise."""
    from cinestrain.node.dicomweb import check_dicomweb
    from cinestrain.node.errors import ExportError

    try:
        check_dicomweb(dest)
    except ExportError as exc:
        print(f"cinestrain echo: {exc}", file=sys.stderr)
        return 1
    print(f"{dest.name}: QIDO-RS query to {dest.url} succeeded")
    return 0
