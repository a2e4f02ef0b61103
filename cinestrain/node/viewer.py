"""A local OHIF viewer over DICOMweb: Orthanc + its DICOMweb plugin behind nginx, on loopback.

What runs (all Debian packages, plus the OHIF build from the npm package ``@ohif/app``,
installed by ``make viewer-setup`` into ``viewer/ohif/<version>``, never committed):

- **Orthanc** with the DICOMweb plugin (``orthanc-dicomweb``): receives results by C-STORE
  on ``dicom_port`` (AE title ``ae_title``), serves QIDO-RS / WADO-RS on an internal HTTP
  port bound to loopback;
- **nginx** on ``http_port``: serves OHIF's prebuilt ``dist/`` and the ``app-config.js``
  written here, and proxies ``/dicom-web/`` to Orthanc, so that OHIF and DICOMweb share one
  origin (no CORS);
- OHIF reads the study from ``/dicom-web`` (its ``dicomweb`` data source).

Everything lives in one data folder: Orthanc's storage and index, the generated
configurations, nginx's temporary files and both logs. :class:`LocalViewer` starts and
stops the two servers; ``cinestrain view`` (:mod:`cli.view`) wraps it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cinestrain.config.schema import DicomDestination, NodeConfig
from cinestrain.node.errors import ViewerError
from cinestrain.node.export import is_dicom_file, send_dicom

log = logging.getLogger(__name__)

#: the pinned OHIF release (npm package ``@ohif/app``; the Makefile installs it)
OHIF_VERSION = "3.13.2"
#: where ``make viewer-setup`` installs OHIF's ``dist/`` (one folder per version)
OHIF_ROOT = Path(__file__).resolve().parents[2] / "viewer" / "ohif"
#: the DICOMweb plugin of Debian's ``orthanc-dicomweb``
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: Debian installs nginx in /usr/sbin, often not on a user's PATH
_SBIN = ("/usr/sbin", "/sbin")


def find_program(name: str) -> str | None:
    """The path of a program on PATH or in /usr/sbin, None when absent."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


@dataclass(frozen=True)
class ViewerSettings:
    """Where the local viewer listens and keeps its data.

    Attributes
    ----------
    http_port : int
        nginx: OHIF at ``/``, DICOMweb at ``/dicom-web``.
    dicom_port : int
        Orthanc's DICOM port (a node destination sends here).
    orthanc_http_port : int
        Orthanc's own REST/DICOMweb port, loopback only (nginx proxies to it).
    ae_title : str
        Orthanc's AE title.
    data_dir : pathlib.Path
        Storage, generated configurations and logs.
    ohif_dir : pathlib.Path
        OHIF's built ``dist/`` folder.
    """

    http_port: int = 8008
    dicom_port: int = 4243
    orthanc_http_port: int = 8043
    ae_title: str = "OHIFVIEWER"
    data_dir: Path = field(default_factory=lambda: Path("viewer-data"))
    ohif_dir: Path = field(default_factory=lambda: OHIF_ROOT / OHIF_VERSION)

    @property
    def url(self) -> str:
        """The viewer's home page (OHIF's study list)."""
        return f"http://127.0.0.1:{self.http_port}/"

    def study_url(self, study_instance_uid: str) -> str:
        """The OHIF page of one study."""
        return f"{self.url}viewer?StudyInstanceUIDs={study_instance_uid}"

    def destination(self) -> DicomDestination:
        """The viewer's Orthanc as a node destination (``[[destinations]]``)."""
        return DicomDestination(name="ohif-viewer", ae_title=self.ae_title,
                                host="127.0.0.1", port=self.dicom_port)


def app_config_js() -> str:
    """OHIF's ``app-config.js``: one DICOMweb data source on the same origin."""
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "cinestrain",
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "cinestrain",
            "configuration": {
                "friendlyName": "cinestrain local Orthanc",
                "name": "orthanc",
                "wadoUriRoot": "/wado",
                "qidoRoot": "/dicom-web",
                "wadoRoot": "/dicom-web",
                "qidoSupportsIncludeField": False,
                "imageRendering": "wadors",
                "thumbnailRendering": "wadors",
                "enableStudyLazyLoad": True,
                "supportsFuzzyMatching": False,
                "supportsWildcard": True,
                "dicomUploadEnabled": False,
                "bulkDataURI": {"enabled": True},
                "omitQuotationForMultipartRequest": True,
            },
        }],
    }
    return ("// Written by cinestrain (node/viewer.py); regenerated at every start.\n"
            f"window.config = {json.dumps(config, indent=2)};\n")


def orthanc_dicomweb_config() -> dict[str, object]:
    """The keys of an Orthanc configuration that load the DICOMweb plugin and serve
    QIDO-RS, WADO-RS and STOW-RS at ``/dicom-web/`` (WADO-URI at ``/wado``)."""
    return {
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                     "WadoRoot": "/wado", "Ssl": False},
    }


def orthanc_config(settings: ViewerSettings) -> dict[str, object]:
    """Orthanc's configuration: loopback HTTP, C-STORE from anyone, DICOMweb on."""
    data = settings.data_dir.resolve()
    return {
        "Name": "cinestrain-viewer",
        "StorageDirectory": str(data / "orthanc" / "storage"),
        "IndexDirectory": str(data / "orthanc" / "index"),
        "DicomAet": settings.ae_title,
        "DicomPort": settings.dicom_port,
        "HttpPort": settings.orthanc_http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomModalities": {},
        # reprocessing a study sends objects with the same UIDs: the new one wins
        "OverwriteInstances": True,
        **orthanc_dicomweb_config(),
    }


def nginx_config(settings: ViewerSettings) -> str:
    """nginx in the foreground: OHIF's files, our app-config.js, /dicom-web to Orthanc."""
    run = (settings.data_dir / "nginx").resolve()
    # As root, workers would drop to "nobody", who cannot read a private data folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {kind}_temp_path {run / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# Written by cinestrain (node/viewer.py); regenerated at every start.
{user}worker_processes 1;
daemon off;
pid {run / 'nginx.pid'};
error_log {run / 'error.log'} warn;
events {{ worker_connections 512; }}
http {{
  include /etc/nginx/mime.types;
  access_log {run / 'access.log'};
{temp}
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{settings.http_port};
    root {settings.ohif_dir.resolve()};
    location = /app-config.js {{
      alias {run / 'app-config.js'};
      add_header Cache-Control no-store;
    }}
    location /dicom-web/ {{
      proxy_pass http://127.0.0.1:{settings.orthanc_http_port}/dicom-web/;
      proxy_set_header Host $host:$server_port;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
    location /wado {{
      proxy_pass http://127.0.0.1:{settings.orthanc_http_port}/wado;
    }}
    # OHIF is a single-page application: its routes (/viewer, ...) serve index.html
    location / {{ try_files $uri $uri/ /index.html; }}
  }}
}}
"""


def missing_parts(settings: ViewerSettings) -> list[str]:
    """What the viewer lacks on this machine (empty when it can start)."""
    missing = []
    if find_program("Orthanc") is None:
        missing.append("Orthanc (Debian package orthanc)")
    if not DICOMWEB_PLUGIN.is_file():
        missing.append(f"{DICOMWEB_PLUGIN} (Debian package orthanc-dicomweb)")
    if find_program("nginx") is None:
        missing.append("nginx (Debian package nginx-light)")
    if not (settings.ohif_dir / "index.html").is_file():
        missing.append(f"OHIF {OHIF_VERSION} in {settings.ohif_dir} (make viewer-setup)")
    return missing


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


class LocalViewer:
    """Orthanc (DICOMweb) and nginx (OHIF), started and stopped together.

    Parameters
    ----------
    settings : ViewerSettings
        Ports, AE title and folders.
    """

    def __init__(self, settings: ViewerSettings) -> None:
        self.settings = settings
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._logs: list = []

    def __enter__(self) -> LocalViewer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def write_configs(self) -> tuple[Path, Path]:
        """Write Orthanc's, nginx's and OHIF's configurations; return Orthanc's and
        nginx's paths."""
        data = self.settings.data_dir
        for sub in ("orthanc/storage", "orthanc/index", "nginx"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (data / "nginx" / kind).mkdir(exist_ok=True)
        orthanc = data / "orthanc" / "orthanc.json"
        orthanc.write_text(json.dumps(orthanc_config(self.settings), indent=2))
        (data / "nginx" / "app-config.js").write_text(app_config_js())
        nginx = data / "nginx" / "nginx.conf"
        nginx.write_text(nginx_config(self.settings))
        return orthanc, nginx

    def _spawn(self, name: str, argv: list[str], log_path: Path) -> None:
        log_file = log_path.open("a")
        self._logs.append(log_file)
        self._procs.append((name, subprocess.Popen(argv, stdout=log_file,
                                                   stderr=subprocess.STDOUT)))

    def start(self, timeout_s: float = 60.0) -> None:
        """Start both servers and wait until OHIF and DICOMweb answer through nginx.

        Raises
        ------
        ViewerError
            A part is missing, a server exits, or nothing answers within ``timeout_s``.
        """
        missing = missing_parts(self.settings)
        if missing:
            raise ViewerError("the viewer cannot start, missing: " + "; ".join(missing))
        orthanc_json, nginx_conf = self.write_configs()
        data = self.settings.data_dir
        self._spawn("Orthanc", [str(find_program("Orthanc")), str(orthanc_json.resolve())],
                    data / "orthanc" / "orthanc.log")
        nginx_dir = (data / "nginx").resolve()
        self._spawn("nginx", [str(find_program("nginx")), "-e", str(nginx_dir / "error.log"),
                              "-p", str(nginx_dir), "-c", str(nginx_conf.resolve())],
                    data / "nginx" / "nginx.log")
        base = self.settings.url
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    self.stop()
                    raise ViewerError(f"{name} exited with status {proc.returncode}; "
                                      f"see the logs in {data.resolve()}")
            if _http_ok(base + "dicom-web/studies") and _http_ok(base + "app-config.js"):
                log.info("viewer up at %s (DICOM %s@127.0.0.1:%d)", base,
                         self.settings.ae_title, self.settings.dicom_port)
                return
            time.sleep(0.3)
        self.stop()
        raise ViewerError(f"the viewer did not answer at {base} within {timeout_s:.0f} s; "
                          f"see the logs in {data.resolve()}")

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 15 s)."""
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self._procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        for log_file in self._logs:
            log_file.close()
        self._procs, self._logs = [], []

    def wait(self) -> int:
        """Block until one server exits; return its status."""
        while True:
            for _, proc in self._procs:
                if proc.poll() is not None:
                    return int(proc.returncode)
            time.sleep(0.5)


def dicom_files(paths: list[Path]) -> list[Path]:
    """The DICOM files among ``paths`` (folders searched recursively), sorted."""
    found: set[Path] = set()
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        found.update(p for p in candidates if p.is_file() and is_dicom_file(p))
    return sorted(found)


def send_to_viewer(settings: ViewerSettings, files: list[Path], cfg: NodeConfig | None = None
                   ) -> int:
    """C-STORE files to the viewer's Orthanc, as a node destination would; return how
    many were stored.

    Raises
    ------
    node.errors.ExportError
        No association (the viewer is not running) or a file refused.
    """
    return send_dicom(settings.destination(), cfg or NodeConfig(), files)
