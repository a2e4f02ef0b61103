"""``cinestrain view``: a local OHIF viewer over DICOMweb (Orthanc + nginx) on loopback.

``cinestrain view`` starts it in the foreground (Ctrl-C stops it) and prints where to send
DICOM; ``cinestrain view --send PATH...`` sends files to a running one and prints the
viewer URL of each study. ``cinestrain analyze ... --view`` does the same with the study it
analysed and its results.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from pydicom import dcmread

from cinestrain.node.errors import ExportError, ViewerError
from cinestrain.node.viewer import (
    OHIF_VERSION,
    LocalViewer,
    ViewerSettings,
    dicom_files,
    send_to_viewer,
)


def add_viewer_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that locate the viewer (shared with ``analyze --view``)."""
    defaults = ViewerSettings()
    parser.add_argument("--viewer-http-port", type=int, default=defaults.http_port,
                        help="port of OHIF and /dicom-web (default %(default)s)")
    parser.add_argument("--viewer-dicom-port", type=int, default=defaults.dicom_port,
                        help="DICOM port of the viewer's Orthanc (default %(default)s)")


def settings_from(args: argparse.Namespace) -> ViewerSettings:
    """The viewer settings the options select."""
    extra = {}
    if getattr(args, "data", None) is not None:
        extra["data_dir"] = args.data
    if getattr(args, "ohif", None) is not None:
        extra["ohif_dir"] = args.ohif
    return ViewerSettings(http_port=args.viewer_http_port, dicom_port=args.viewer_dicom_port,
                          **extra)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_viewer_arguments(parser)
    parser.add_argument("--data", type=Path, help="storage, configurations and logs "
                        "(default: ./viewer-data)")
    parser.add_argument("--ohif", type=Path, help=f"OHIF's dist folder (default: "
                        f"viewer/ohif/{OHIF_VERSION}, installed by make viewer-setup)")
    parser.add_argument("--send", nargs="+", type=Path, metavar="PATH",
                        help="send these DICOM files/folders to a running viewer and exit")


def study_uids(files: list[Path]) -> list[str]:
    """The StudyInstanceUIDs of ``files``, in first-seen order."""
    seen: dict[str, None] = {}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        seen.setdefault(str(ds.StudyInstanceUID), None)
    return list(seen)


def send_and_print(settings: ViewerSettings, paths: list[Path]) -> int:
    """Send the DICOM files under ``paths`` to the viewer; print the study URLs."""
    files = dicom_files(paths)
    if not files:
        print("cinestrain: no DICOM files to send", file=sys.stderr)
        return 2
    try:
        stored = send_to_viewer(settings, files)
    except ExportError as exc:
        print(f"cinestrain: {exc} (is the viewer running? start it with `make viewer`)",
              file=sys.stderr)
        return 1
    print(f"sent {stored} DICOM objects to {settings.ae_title}@127.0.0.1:"
          f"{settings.dicom_port}")
    for uid in study_uids(files):
        print(f"view: {settings.study_url(uid)}")
    return 0


class _Stop(BaseException):
    """SIGTERM or SIGINT reached the foreground viewer."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.send:
        return send_and_print(settings, args.send)
    viewer = LocalViewer(settings)
    try:
        viewer.start()
    except ViewerError as exc:
        print(f"cinestrain: {exc}", file=sys.stderr)
        return 1
    dest = settings.destination()
    print(f"OHIF {OHIF_VERSION}: {settings.url}", flush=True)
    print(f"DICOMweb: {settings.url}dicom-web")
    print(f"DICOM: AE {dest.ae_title} at {dest.host}:{dest.port}; as a node destination:\n"
          f'  [[destinations]]\n  kind = "dicom"\n  name = "{dest.name}"\n'
          f'  ae_title = "{dest.ae_title}"\n  host = "{dest.host}"\n  port = {dest.port}')
    print(f"data and logs: {settings.data_dir.resolve()}; Ctrl-C stops", flush=True)
    # SIGTERM (systemd, kill) and SIGINT (also when started in the background) stop both
    # servers through the finally below: exit 0 for SIGTERM (a requested stop), 130 for
    # Ctrl-C (the convention for SIGINT, as every command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop_on_signal)
    try:
        status = viewer.wait()
        print(f"cinestrain: a viewer server exited ({status}); see the logs", file=sys.stderr)
        return 1
    except _Stop as stop:
        interrupted = stop.signum == signal.SIGINT
        print(f"cinestrain view: stopped ({'Ctrl-C' if interrupted else 'SIGTERM'})",
              file=sys.stderr)
        return 130 if interrupted else 0
    finally:
        viewer.stop()
