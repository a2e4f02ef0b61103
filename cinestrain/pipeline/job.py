"""The job contract: what one analysis is asked to do, and what it produced.

One :class:`AnalysisRequest` type serves ``cinestrain analyze`` and the node alike: both
build it with :meth:`AnalysisRequest.from_config` from the validated configuration (the
model settings travel whole, as the configuration's ``[model]`` section, never re-typed
field by field), the index stores it as JSON (:meth:`~AnalysisRequest.to_json`,
:meth:`~AnalysisRequest.from_json`) and the worker runs it with
:func:`pipeline.run.run_analysis`. A request is plain, validated data (paths, settings,
UIDs), so the queue is a seam: another engine can run the same request elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cinestrain.config.schema import Device, ModelSettings, NodeConfig

#: keys of :class:`ModelSettings` that requests stored before it travelled whole held at
#: the top level (a node upgraded with pending jobs still runs them)
_LEGACY_MODEL_KEYS = ("pairing", "temporal", "weights", "ed_phase", "recentre_rounds")


class AnalysisRequest(BaseModel):
    """One analysis job (validated; immutable; JSON in the index).

    Attributes
    ----------
    inputs
        DICOM files and/or folders holding the cine stack.
    out_dir
        Where results are written (created).
    model
        The motion model and how it is applied (the configuration's ``[model]``).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (``worker.device``).
    save_motion
        Also write ``motion.npz`` (DESIGN.md § report.json).
    write_processes
        Processes writing the DICOM results (``worker.write_processes``).
    series_instance_uid
        Analyse the stack this series belongs to, not the best one found.
    seg
        A DICOM Segmentation of the ED myocardium; ``None``: a SEG among the inputs that
        references the stack, else the automatic segmentation.
    uid_series
        Series UIDs the result UIDs derive from (default: the stack's; see
        :func:`dicom_io.write.results.write_dicom_results`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[Path, ...] = Field(min_length=1)
    out_dir: Path
    model: ModelSettings
    device: Device
    save_motion: bool
    write_processes: int = Field(ge=1)
    series_instance_uid: str | None = None
    seg: Path | None = None
    uid_series: tuple[str, ...] | None = None

    @classmethod
    def from_config(
        cls,
        cfg: NodeConfig,
        inputs: list[Path] | tuple[Path, ...],
        out_dir: Path,
        *,
        model: dict[str, Any] | None = None,
        device: Device | None = None,
        save_motion: bool | None = None,
        series_instance_uid: str | None = None,
        seg: Path | None = None,
        uid_series: list[str] | tuple[str, ...] | None = None,
    ) -> AnalysisRequest:
        """The request for ``inputs`` as the configuration says, with overrides.

        ``model`` overrides keys of the ``[model]`` section (validated like the file);
        ``device`` and ``save_motion`` those of ``[worker]``; ``None`` keeps the config's.
        """
        settings = cfg.model
        if model:
            settings = ModelSettings.model_validate({**settings.model_dump(), **model})
        return cls(
            inputs=tuple(inputs),
            out_dir=out_dir,
            model=settings,
            device=cfg.worker.device if device is None else device,
            save_motion=cfg.worker.save_motion if save_motion is None else save_motion,
            write_processes=cfg.worker.write_processes,
            series_instance_uid=series_instance_uid,
            seg=seg,
            uid_series=None if uid_series is None else tuple(uid_series),
        )

    def in_folder(self, out_dir: Path) -> AnalysisRequest:
        """The same request writing into ``out_dir``."""
        return self.model_copy(update={"out_dir": Path(out_dir)})

    def to_json(self) -> str:
        """The request as stored in the index."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> AnalysisRequest:
        """A request as stored by :meth:`to_json` (or by a release before ``model`` was
        one section: those keys are gathered into it)."""
        data = json.loads(text)
        if isinstance(data, dict) and "model" not in data:
            data["model"] = {k: data.pop(k) for k in _LEGACY_MODEL_KEYS if k in data}
        return cls.model_validate(data)


@dataclass
class AnalysisOutcome:
    """What a job produced.

    ``report`` is the ``report.json`` document; ``error`` says why the stack could not be
    analysed (then the report holds no numbers).
    """

    series_instance_uid: str
    shape: tuple[int, int, int, int]
    ed_phase: int
    ed_phase_source: str
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    report: dict[str, object] | None = None
    error: str | None = None
