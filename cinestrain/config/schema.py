"""The configuration schema of a cinestrain node (pydantic v2).

Defaults live on the fields and nowhere else; ``default.toml`` spells the same values out
with a comment per key (a test keeps the two identical). Unknown keys are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pynetdicom.utils import set_ae

from cinestrain.inference.model.settings import (
    MAX_PASSES,
    MAX_RECENTRE_ROUNDS,
    MotionSettings,
    Pairing,
    Temporal,
)


def default_storage_directory() -> Path:
    """``$XDG_DATA_HOME/cinestrain`` (``~/.local/share/cinestrain``): no root needed."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "cinestrain"


def _check_ae_title(value: str) -> str:
    """An AE title: 1-16 characters of the DICOM AE repertoire, not all spaces."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > 16:
        raise ValueError("must be at most 16 characters")
    try:
        set_ae(value, "AE title", allow_empty=False, allow_none=False)
    except ValueError as exc:
        raise ValueError(
            "must be 1-16 characters, no backslash or control characters, not all spaces"
        ) from exc
    return value.strip()


def _check_ip_address(value: str) -> str:
    """An IP address to listen on (not a host name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValueError("must be an IP address (127.0.0.1, 0.0.0.0, ::1, ...)") from exc
    return value


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
IPAddress = Annotated[str, AfterValidator(_check_ip_address)]
#: where inference runs: "auto" is the GPU when one is present
Device = Literal["auto", "cpu", "cuda"]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServer(_Section):
    """DICOM TLS on the listening port (DICOM PS3.15 basic TLS profile)."""

    enabled: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    ca_certificates: Path | None = None
    require_client_certificate: bool = False

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TLSServer:
        if self.enabled and (self.certificate is None or self.private_key is None):
            raise ValueError("enabled TLS needs 'certificate' and 'private_key'")
        if self.require_client_certificate and self.ca_certificates is None:
            raise ValueError("'require_client_certificate' needs 'ca_certificates'")
        return self


class TLSClient(_Section):
    """DICOM TLS towards a destination."""

    enabled: bool = False
    ca_certificates: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None

    @model_validator(mode="after")
    def _key_with_certificate(self) -> TLSClient:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("a client 'certificate' needs its 'private_key' and vice versa")
        return self


class Timeouts(_Section):
    """Network timeouts of the SCP, in seconds."""

    acse_s: float = Field(30.0, gt=0, le=3600)
    dimse_s: float = Field(60.0, gt=0, le=3600)
    network_s: float = Field(120.0, gt=0, le=86400)


class AllowedCaller(_Section):
    """A calling AE title that may associate, optionally only from some host addresses."""

    ae_title: AETitle
    hosts: list[str] = Field(default_factory=list)
    return_port: Port | None = Field(
        None, description="send results back to the caller: its AE title, at the address it"
        " called from, on this port (None: results go only to the destinations)",
    )

    @field_validator("hosts")
    @classmethod
    def _valid_addresses(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"{host!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
                ) from exc
        return hosts


class NodeSection(_Section):
    """The DICOM service: identity, address and association policy."""

    ae_title: AETitle = "CINESTRAIN"
    bind_address: IPAddress = "127.0.0.1"
    port: Port = 11112
    max_associations: int = Field(4, ge=1, le=64)
    max_pdu: int = Field(65536, ge=0, le=2**32 - 1)
    poll_interval_ms: float = Field(
        0.1, gt=0, le=100,
        description="how long an association's network reader sleeps when it finds nothing"
        " to do (pynetdicom's DUL run-loop delay, 1 ms by default there): lower answers"
        " each instance sooner and costs more idle CPU per open association",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts)
    allow_any_caller: bool = False
    allowed_callers: list[AllowedCaller] = Field(default_factory=list)
    tls: TLSServer = Field(default_factory=TLSServer)

    @field_validator("max_pdu")
    @classmethod
    def _pdu_floor(cls, value: int) -> int:
        if 0 < value < 4096:
            raise ValueError("must be 0 (unlimited) or at least 4096 bytes")
        return value


class StorageSection(_Section):
    """Where received instances, the index and results live."""

    directory: Path = Field(default_factory=default_storage_directory)
    min_free_mb: int = Field(1024, ge=0)
    retention_days: int = Field(30, ge=0)
    fsync_directory: bool = Field(
        False, description="also fsync the spool folder after each rename (strict POSIX)"
    )

    @field_validator("directory", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        if isinstance(value, str | Path):
            return Path(os.path.expandvars(os.path.expanduser(str(value))))
        return value


class SchedulerSection(_Section):
    """When a received stack becomes a job."""

    series_stable_seconds: float = Field(60.0, gt=0, le=86400)
    complete_grace_seconds: float = Field(10.0, ge=0, le=3600)
    tick_seconds: float = Field(2.0, gt=0, le=600)
    purge_interval_seconds: float = Field(3600.0, gt=0, le=86400)


class WorkerSection(_Section):
    """The inference worker processes."""

    device: Device = "auto"
    processes: int = Field(1, ge=1, le=16)
    torch_threads: int = Field(0, ge=0, le=256, description="0: let torch decide")
    save_motion: bool = Field(True, description="keep motion.npz with each job's results")
    keep_warm: bool = Field(
        True, description="keep one worker process started ahead, its imports done"
    )
    write_processes: int = Field(
        2, ge=1, le=2,
        description="processes writing a job's DICOM results (2: a forked one writes the "
                    "SEG and captures while the job's writes the Parametric Maps and SR)",
    )


class ModelSettings(_Section):
    """The motion model and how it is applied (DESIGN.md § Pairing, § The motion model).

    The model file (``weights``) holds the architecture; the other keys are how a run
    applies it (:meth:`motion_settings`).
    """

    pairing: Pairing = "anchored"
    temporal: Temporal = "gru"
    weights: Path | None = Field(None, description="None: the weights the package ships")
    ed_phase: Literal["auto"] | Annotated[int, Field(ge=0)] = "auto"
    passes: int = Field(
        2, ge=1, le=MAX_PASSES,
        description="passes of the whole network per cycle (each later pass estimates what "
        "is left after warping every phase onto ED); the shipped models are trained for 2",
    )
    recentre_rounds: int = Field(
        1, ge=0, le=MAX_RECENTRE_ROUNDS,
        description="times each phase's crop follows the myocardium's mean motion and the "
        "model runs again (0: a fixed crop; each round is one more model pass)",
    )

    def motion_settings(self) -> MotionSettings:
        """How the motion model is applied, for :func:`inference.model.estimate.estimate_motion`."""
        return MotionSettings(pairing=self.pairing, passes=self.passes,
                              recentre_rounds=self.recentre_rounds)


class ExportSection(_Section):
    """Retries of result exports (exponential backoff, then dead letter)."""

    retry_max: int = Field(8, ge=0, le=100)
    retry_initial_seconds: float = Field(30.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    associations: int = Field(
        4, ge=1, le=16, description="parallel associations per DICOM destination"
    )
    while_writing: bool = Field(
        True, description="send each DICOM result as soon as the worker has written it"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ExportSection:
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("'retry_max_seconds' must be >= 'retry_initial_seconds'")
        return self


class DicomDestination(_Section):
    """A DICOM peer (PACS, viewer) that receives every result by C-STORE."""

    kind: Literal["dicom"] = "dicom"
    name: str = Field(min_length=1, max_length=64)
    ae_title: AETitle
    host: str = Field(min_length=1)
    port: Port
    calling_ae_title: AETitle | None = Field(None, description="None: the node's AE title")
    tls: TLSClient = Field(default_factory=TLSClient)


class FolderDestination(_Section):
    """A directory that receives a copy of every result (for scripts, archives, tests)."""

    kind: Literal["folder"]
    name: str = Field(min_length=1, max_length=64)
    path: Path


class DicomWebDestination(_Section):
    """A DICOMweb server (PACS, archive) that receives every result by STOW-RS.

    Secrets are never written in the TOML: HTTP basic authentication reads the password
    from ``password_file``, bearer authentication the token from ``token_file`` (each
    read at every export, so a rotated token needs no restart).
    """

    kind: Literal["dicomweb"]
    name: str = Field(min_length=1, max_length=64)
    url: str = Field(description="the DICOMweb root, e.g. https://pacs.example.org/dicom-web")
    username: str | None = Field(None, min_length=1, description="HTTP basic authentication")
    password_file: Path | None = Field(None, description="the basic password, in this file")
    token_file: Path | None = Field(None, description="a bearer token, in this file")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="per HTTP request")
    ca_certificates: Path | None = Field(
        None, description="CA bundle that verifies an https server (None: the system's)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. "
                             "http://10.0.0.20:8042/dicom-web")
        if parts.query or parts.fragment:
            raise ValueError("must be the DICOMweb root, without ?query or #fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_authentication(self) -> DicomWebDestination:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("'username' and 'password_file' go together")
        if self.username is not None and self.token_file is not None:
            raise ValueError("either 'username' + 'password_file' or 'token_file', not both")
        return self


Destination = Annotated[
    DicomDestination | FolderDestination | DicomWebDestination, Field(discriminator="kind")
]


class HttpSection(_Section):
    """The read-only health and metrics endpoint: ``/healthz`` and ``/metrics``."""

    enabled: bool = True
    bind_address: IPAddress = "127.0.0.1"
    port: Port = 11180


class LoggingSection(_Section):
    """Log level and optional file (stderr / the journal when empty)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: Path | None = None


class NodeConfig(_Section):
    """A whole node: one TOML file (see ``default.toml`` for every key with its meaning)."""

    node: NodeSection = Field(default_factory=NodeSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    worker: WorkerSection = Field(default_factory=WorkerSection)
    model: ModelSettings = Field(default_factory=ModelSettings)
    export: ExportSection = Field(default_factory=ExportSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    http: HttpSection = Field(default_factory=HttpSection)
    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> NodeConfig:
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destination names must be unique, repeated: {', '.join(dupes)}")
        callers = [c.ae_title for c in self.node.allowed_callers]
        dupes = sorted({n for n in callers if callers.count(n) > 1})
        if dupes:
            raise ValueError(f"allowed caller AE titles listed twice: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _own_http_port(self) -> NodeConfig:
        if self.http.enabled and self.http.port == self.node.port:
            raise ValueError(f"http.port {self.http.port} is also node.port: give each its own")
        return self
