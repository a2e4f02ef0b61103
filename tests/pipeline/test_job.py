"""The job contract: one validated request type, built from the configuration, stored as
JSON in the index and read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cinestrain.config.load import parse_config
from cinestrain.inference.model.settings import MotionSettings
from cinestrain.node.worker import build_request
from cinestrain.pipeline.job import AnalysisRequest


def test_from_config_takes_the_model_section_whole(tmp_path: Path) -> None:
    cfg = parse_config({"model": {"pairing": "consecutive", "passes": 1, "recentre_rounds": 2},
                        "worker": {"device": "cpu", "save_motion": False}})
    request = AnalysisRequest.from_config(cfg, [tmp_path / "in"], tmp_path / "out")
    assert request.model == cfg.model
    assert (request.device, request.save_motion) == ("cpu", False)
    assert request.write_processes == cfg.worker.write_processes
    assert request.model.motion_settings() == MotionSettings("consecutive", 1, 2)


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    cfg = parse_config({})
    request = AnalysisRequest.from_config(cfg, [tmp_path], tmp_path / "out",
                                          model={"temporal": "none", "ed_phase": 3},
                                          device="cpu", save_motion=True)
    assert (request.model.temporal, request.model.ed_phase) == ("none", 3)
    assert request.model.pairing == cfg.model.pairing  # not overridden: the config's
    with pytest.raises(ValidationError, match="pairing"):
        AnalysisRequest.from_config(cfg, [tmp_path], tmp_path, model={"pairing": "both"})
    with pytest.raises(ValidationError, match="passes"):
        AnalysisRequest.from_config(cfg, [tmp_path], tmp_path, model={"passes": 0})
    with pytest.raises(ValidationError, match="inputs"):
        AnalysisRequest.from_config(cfg, [], tmp_path)
    with pytest.raises(ValidationError, match="extra"):
        AnalysisRequest.model_validate({**request.model_dump(), "colour": "red"})


def test_json_round_trip_and_job_folder(tmp_path: Path) -> None:
    cfg = parse_config({"model": {"weights": str(tmp_path / "w.pt")}})
    request = build_request(cfg, [tmp_path / "a.dcm", tmp_path / "b.dcm"], "1.2.3",
                            ["1.2.3", "1.2.4"], tmp_path / "results")
    assert AnalysisRequest.from_json(request.to_json()) == request
    assert request.uid_series == ("1.2.3", "1.2.4") and request.series_instance_uid == "1.2.3"
    job = request.in_folder(tmp_path / "results" / "job-7")
    assert job.out_dir == tmp_path / "results" / "job-7" and job.inputs == request.inputs
    with pytest.raises(ValidationError):
        job.save_motion = False  # type: ignore[misc]  (immutable)


def test_requests_stored_by_an_earlier_release_still_run(tmp_path: Path) -> None:
    """Pending jobs of a node upgraded from the release whose requests kept the model keys
    at the top level (no ``model`` section, no ``passes``) are read as they were meant."""
    stored = {"inputs": [str(tmp_path / "a.dcm")], "out_dir": str(tmp_path / "job-1"),
              "pairing": "consecutive", "temporal": "gru", "weights": None, "ed_phase": "auto",
              "recentre_rounds": 0, "device": "auto", "save_motion": True,
              "series_instance_uid": "1.2", "uid_series": ["1.2"], "write_processes": 2}
    request = AnalysisRequest.from_json(json.dumps(stored))
    assert request.model.pairing == "consecutive" and request.model.recentre_rounds == 0
    assert request.model.passes == 2  # what the shipped model files of that release held
    assert request.out_dir == tmp_path / "job-1" and request.uid_series == ("1.2",)
