"""Parametric Maps of strain and displacement: layout, geometry, timing, and the round trip
stored value -> Real World Value Mapping -> strain."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from cinestrain.dicom_io.write.pm import (
    QUANTITIES,
    build_parametric_maps,
    displacement_in_patient,
    frame_slices,
)
from cinestrain.dicom_io.write.uids import ResultUIDs
from cinestrain.speed import PLAIN
from tests.helpers.equivalence import differences
from tests.helpers.results import dciodvfy, phantom_result


@pytest.fixture(scope="module")
def uids() -> ResultUIDs:
    return ResultUIDs(phantom_result().cine.series_instance_uids, "test model 1")


def _real(pm: hd.pm.ParametricMap) -> np.ndarray:
    """Stored values through the instance's own RWVM; NaN outside the mapped range."""
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    stored = pm.pixel_array.astype(float)
    real = stored * float(mapping.RealWorldValueSlope) + float(mapping.RealWorldValueIntercept)
    inside = ((stored >= mapping.RealWorldValueFirstValueMapped)
              & (stored <= mapping.RealWorldValueLastValueMapped))
    return np.where(inside, real, np.nan)


@pytest.mark.parametrize("layout", ["classic", "enhanced"])
@pytest.mark.parametrize("quantity", ["radial_strain", "circumferential_strain"])
def test_strain_round_trips_within_a_tenth_of_a_point(quantity: str, layout: str,
                                                      uids: ResultUIDs, tmp_path) -> None:
    p = phantom_result(layout)
    maps = (p.analysis.strain.radial_pct if quantity == "radial_strain"
            else p.analysis.strain.circumferential_pct)
    myo = p.analysis.masks.myocardium
    pms = build_parametric_maps(p.cine, p.images, maps, quantity, uids=uids, series_number=9,
                                mask=myo)
    assert len(pms) == p.cine.n_phases
    for t, pm in enumerate(pms):
        pm.save_as(tmp_path / "pm.dcm")
        back = hd.pm.ParametricMap.from_dataset(hd.imread(tmp_path / "pm.dcm"))
        order = frame_slices(back, p.cine)
        assert sorted(order) == list(range(p.cine.n_slices))
        real, mask = _real(back), myo[order]
        assert np.all(np.isnan(real[~mask]))
        assert np.max(np.abs(real[mask] - maps[order, t][mask])) < 0.1
        for s, frame in zip(order, back.PerFrameFunctionalGroupsSequence, strict=True):
            ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
            source = p.cine.sources[s][t]
            assert ref.ReferencedSOPInstanceUID == source.sop_instance_uid
            assert ref.get("ReferencedFrameNumber") == source.frame_number
        assert back.ContentLabel == QUANTITIES[quantity].label
        mapping = back.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "%"
        assert mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue in (
            "130675", "130677")
        voi = back.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
        assert float(voi.WindowWidth) > 0


def test_frames_keep_the_source_geometry_timing_and_references(uids: ResultUIDs) -> None:
    p = phantom_result()
    cine = p.cine
    t = 2
    pm = build_parametric_maps(cine, p.images, p.analysis.strain.radial_pct, "radial_strain",
                               uids=uids, series_number=9, mask=p.analysis.masks.myocardium)[t]
    assert pm.InstanceNumber == t + 1 and pm.StudyInstanceUID == cine.study_instance_uid
    shared = pm.SharedFunctionalGroupsSequence[0]
    assert np.allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                       cine.pixel_spacing[0])
    assert np.allclose([float(v) for v in
                        shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                       cine.image_orientations[0])
    for s, frame in zip(frame_slices(pm, cine), pm.PerFrameFunctionalGroupsSequence,
                        strict=True):
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, cine.image_positions[s], atol=1e-3)
        delay = frame.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime
        assert delay == pytest.approx(cine.slice_trigger_times[s, t], abs=1e-3)
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == cine.sources[s][t].sop_instance_uid


def test_displacement_maps_are_patient_components_in_mm(uids: ResultUIDs) -> None:
    p = phantom_result()
    o = p.cine.image_orientations[0]
    d = displacement_in_patient(p.u, o)
    # back to the in-plane components: rows along o[3:], columns along o[:3]
    assert np.allclose(np.einsum("i,isthw->sthw", o[3:], d), p.u[:, :, 0], atol=1e-9)
    assert np.allclose(np.einsum("i,isthw->sthw", o[:3], d), p.u[:, :, 1], atol=1e-9)
    pm = build_parametric_maps(p.cine, p.images, d[0], "displacement_x", uids=uids,
                               series_number=9)[3]
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == "110822"
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    assert np.max(np.abs(_real(pm) - d[0][frame_slices(pm, p.cine), 3])) <= 0.005 + 1e-9


@pytest.mark.parametrize("layout", ["classic", "enhanced"])
def test_fast_path_equals_plain_highdicom_path(layout: str, uids: ResultUIDs,
                                               tmp_path: Path) -> None:
    """The speed layers (phases derived from phase 1's encoding, each phase's source
    references encoded once for two quantities, IOD lookups memoized) against
    ``speed=PLAIN`` (highdicom builds every phase): element by element the same objects,
    pixel data included, and the same dciodvfy report of each."""
    p = phantom_result(layout)
    shared: dict = {}
    for quantity in ("circumferential_strain", "displacement_y"):
        if quantity == "displacement_y":
            values, mask = displacement_in_patient(p.u, p.cine.image_orientations[0])[1], None
        else:
            values, mask = p.analysis.strain.circumferential_pct, p.analysis.masks.myocardium
        fast = build_parametric_maps(p.cine, p.images, values, quantity, uids=uids,
                                     series_number=9, mask=mask, shared=shared)
        plain = build_parametric_maps(p.cine, p.images, values, quantity, uids=uids,
                                      series_number=9, mask=mask, speed=PLAIN)
        assert isinstance(fast[0], hd.pm.ParametricMap)
        assert not any(isinstance(pm, hd.pm.ParametricMap) for pm in fast[1:])  # derived
        assert all(isinstance(pm, hd.pm.ParametricMap) for pm in plain)
        for t, (a, b) in enumerate(zip(fast, plain, strict=True)):
            files = tmp_path / f"fast_{quantity}_{t}.dcm", tmp_path / f"plain_{quantity}_{t}.dcm"
            a.save_as(files[0], enforce_file_format=True)
            b.save_as(files[1], enforce_file_format=True)
            assert differences(*files) == [], f"{quantity} phase {t}"
            assert dciodvfy(files[0]) == dciodvfy(files[1]), f"{quantity} phase {t}"
    assert len(shared) == p.cine.n_phases - 1  # phases 1.. encoded once for both


def test_a_phase_whose_source_differs_is_built_by_highdicom(uids: ResultUIDs) -> None:
    p = phantom_result()
    images = [list(row) for row in p.images]
    changed = images[0][3].copy()
    changed.StationName = "ANOTHER"  # copied into Contributing Equipment by highdicom
    images[0][3] = changed
    pms = build_parametric_maps(p.cine, images, p.analysis.strain.radial_pct, "radial_strain",
                                uids=uids, series_number=9, mask=p.analysis.masks.myocardium)
    assert isinstance(pms[3], hd.pm.ParametricMap)
    assert pms[3].ContributingEquipmentSequence[0].StationName == "ANOTHER"
    assert pms[4].ContributingEquipmentSequence[0].StationName != "ANOTHER"


def test_bad_input_is_refused(uids: ResultUIDs) -> None:
    p = phantom_result()
    maps = p.analysis.strain.radial_pct
    with pytest.raises(ValueError, match="quantity"):
        build_parametric_maps(p.cine, p.images, maps, "pressure", uids=uids, series_number=9)
    with pytest.raises(ValueError, match="myocardium mask"):
        build_parametric_maps(p.cine, p.images, maps, "radial_strain", uids=uids,
                              series_number=9)
    with pytest.raises(ValueError, match="values must be"):
        build_parametric_maps(p.cine, p.images, maps[:, :2], "displacement_x", uids=uids,
                              series_number=9)
    with pytest.raises(TypeError, match="source_series"):
        ResultUIDs("1.2.3", "m")
