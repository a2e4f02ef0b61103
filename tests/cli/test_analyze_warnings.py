"""``cinestrain analyze`` on a study whose UIDs pydicom warns about (a component with a
leading zero, as real exports have): one line for the series, above the progress bar, not
one per value over it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.inference.model.shipped_weights import shipped_weights_path

WEIGHTS = shipped_weights_path("gru")
EXE = Path(sys.executable).parent / "cinestrain"


@pytest.mark.requires_file(WEIGHTS, "the shipped motion model (in the repository)")
def test_non_conformant_uids_give_one_line_per_series(tmp_path: Path) -> None:
    assert main(["phantom", "--out", str(tmp_path / "ph"), "--slices", "3-3", "--phases",
                 "8-8", "--matrix", "64-64", "--seed", "8", "--no-noise"]) == 0
    study = tmp_path / "study"
    study.mkdir()
    for path in sorted((tmp_path / "ph" / "case_000" / "dicom").iterdir()):
        ds = dcmread(path)
        with pytest.warns(UserWarning, match="Invalid value for VR UI"):
            ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.01234"  # leading zero
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.0567"
        ds.save_as(study / path.name)
    done = subprocess.run([str(EXE), "analyze", str(study), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "UserWarning" not in err and "Invalid value for VR UI: '" not in err, err
    lines = [s for s in re.split(r"[\r\n]", err) if "non-conformant" in s]
    assert len(lines) == 1, err
    # written above the bar (tqdm cleared it first), not glued to the bar's last state
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING ", lines[0]), err
    assert "Invalid value for VR UI x" in lines[0]
