"""Coded concepts of the objects cinestrain writes, each defined once.

Standard codes come from pydicom's code dictionary (``pydicom.sr.codedict.codes``), which
carries DICOM PS3.16; the few concepts the standard lacks are in the private coding scheme
:data:`PRIVATE_SCHEME` and say so (:data:`CODING_SCHEME_IDENTIFICATION` describes it in
every object that uses one).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

# ----------------------------------------------------------------- quantities (CID 12304)
#: DCM 130675 "Radial Lagrangian Strain" (CID 12304 / 12311)
RADIAL_STRAIN = codes.DCM.RadialLagrangianStrain
#: DCM 130677 "Circumferential Lagrangian Strain" (CID 12304 / 12311)
CIRCUMFERENTIAL_STRAIN = codes.DCM.CircumferentialLagrangianStrain
#: DCM 110822 / 110823 / 110824 "Spatial Displacement X / Y / Z Component" (CID 7469):
#: along the patient axes (LPS), as PS3.16 defines them
DISPLACEMENT_X = codes.DCM.SpatialDisplacementXComponent
DISPLACEMENT_Y = codes.DCM.SpatialDisplacementYComponent
DISPLACEMENT_Z = codes.DCM.SpatialDisplacementZComponent

# ----------------------------------------------------------------- LV function
#: LN 8821-1 "Left Ventricular ED Volume" (CID 3835)
LV_ED_VOLUME = codes.cid3835.LeftVentricularEDVolume
#: LN 8823-7 "Left Ventricular ES Volume" (CID 3835)
LV_ES_VOLUME = codes.cid3835.LeftVentricularESVolume
#: SCT 90096001 "Stroke Volume" (CID 3835)
STROKE_VOLUME = codes.cid3835.StrokeVolume
#: LN 8811-2 "Left ventricular ejection fraction by MR" (CID 3833)
LV_EJECTION_FRACTION = codes.LN.LeftVentricularEjectionFractionByMR
#: LN 18087-7 "Left Ventricle Mass"
LV_MASS = codes.LN.LeftVentricleMass

# ----------------------------------------------------------------- modifiers
#: SCT 56851009 "Maximum" (CID 3488): peak radial strain is the maximum over phases
MAXIMUM = codes.cid3488.Maximum
#: SCT 255605001 "Minimum" (CID 3488): peak circumferential strain is the minimum
MINIMUM = codes.cid3488.Minimum

# ----------------------------------------------------------------- anatomy
#: SCT 49848007 "Left Ventricle Myocardium" (CID 12305): finding site of global strain
LV_MYOCARDIUM = codes.cid12305.LeftVentricleMyocardium
#: SCT 87878005 "Left ventricle": finding site of the volumes, type of the LV cavity segment
LEFT_VENTRICLE = codes.SCT.LeftVentricle
#: SCT 80891009 "Heart" (anatomic region of every SEG segment, of the maps' frames)
HEART = codes.SCT.Heart
#: SCT 74281007 "Myocardium" (segmented property type of the myocardium)
MYOCARDIUM = Code("74281007", "SCT", "Myocardium")
#: SCT 53085002 "Right ventricle" (type of the RV cavity segment, labelled as cavity)
RIGHT_VENTRICLE = codes.cid12305.RightVentricle
#: SCT 85756007 "Tissue" (category of the myocardium segment)
TISSUE = codes.SCT.Tissue
#: SCT 91723000 "Anatomical Structure" (category of the cavity segments)
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure

#: AHA segment (1-16) -> its SCT code of CID 3717 "Myocardial Wall Segments"
AHA_SEGMENTS: dict[int, Code] = {
    1: codes.cid3717.LeftVentricleBasalAnteriorSegment,        # 264850008
    2: codes.cid3717.LeftVentricleBasalAnteroseptalSegment,    # 396482007
    3: codes.cid3717.LeftVentricleBasalInferoseptalSegment,    # 396646008
    4: codes.cid3717.LeftVentricleBasalInferiorSegment,        # 264846001
    5: codes.cid3717.LeftVentricleBasalInferolateralSegment,   # 396652009
    6: codes.cid3717.LeftVentricleBasalAnterolateralSegment,   # 396654005
    7: codes.cid3717.LeftVentricleMidAnteriorSegment,          # 264848000
    8: codes.cid3717.LeftVentricleMidAnteroseptalSegment,      # 396647004
    9: codes.cid3717.LeftVentricleMidInferoseptalSegment,      # 396649001
    10: codes.cid3717.LeftVentricleMidInferiorSegment,         # 264847005
    11: codes.cid3717.LeftVentricleMidInferolateralSegment,    # 396655006
    12: codes.cid3717.LeftVentricleMidAnterolateralSegment,    # 396656007
    13: codes.cid3717.LeftVentricleApicalAnteriorSegment,      # 264844003
    14: codes.cid3717.LeftVentricleApicalSeptalSegment,        # 264845002
    15: codes.cid3717.LeftVentricleApicalInferiorSegment,      # 264849008
    16: codes.cid3717.LeftVentricleApicalLateralSegment,       # 264853005
}

# ----------------------------------------------------------------- units (UCUM)
PERCENT = codes.UCUM.Percent
MILLISECOND = codes.UCUM.Millisecond
MILLIMETER = codes.UCUM.Millimeter
#: UCUM "ml" and "g" are valid UCUM units absent from pydicom's dictionary
MILLILITER = Code("ml", "UCUM", "milliliter")
GRAM = Code("g", "UCUM", "gram")

# ----------------------------------------------------------------- report structure
#: DCM 126000 "Imaging Measurement Report" (root of TID 1500)
MEASUREMENT_REPORT = codes.DCM.ImagingMeasurementReport
#: SCT 241620005 "Cardiac MRI" (procedure reported)
MR_HEART_PROCEDURE = codes.SCT.CardiacMRI
#: DCM 113076 "Segmentation" (derivation of the SEG frames)
SEGMENTATION_DERIVATION = codes.cid7203.SegmentationImageDerivation
#: DCM 121322 "Source image for image processing operation"
SOURCE_PURPOSE = codes.cid7202.SourceImageForImageProcessingOperation
#: the derivation of Parametric Map frames, highdicom's default
#: "Unspecified method of calculation"
MAP_DERIVATION = codes.DCM.UnspecifiedMethodOfCalculation

# ----------------------------------------------------------------- private concepts
#: coding scheme of the concepts PS3.16 lacks (only "Time to Peak Longitudinal Lagrangian
#: Strain", DCM 130672, exists; its radial and circumferential siblings do not). The generic
#: DCM 113069 "Time To Peak" is not used: both times would then share one concept name in a
#: group, told apart only by a modifier that viewers do not show. dciodvfy warns about the
#: unknown designator; README § DICOM results lists it as accepted.
PRIVATE_SCHEME = "99CINESTRAIN"
#: time from the R wave to peak radial strain
TIME_TO_PEAK_RADIAL = Code("TTPRS", PRIVATE_SCHEME,
                           "Time to Peak Radial Lagrangian Strain")
#: time from the R wave to peak circumferential strain
TIME_TO_PEAK_CIRCUMFERENTIAL = Code("TTPCS", PRIVATE_SCHEME,
                                    "Time to Peak Circumferential Lagrangian Strain")


def coding_scheme_identification() -> Dataset:
    """An item of (0008,0110) Coding Scheme Identification Sequence for
    :data:`PRIVATE_SCHEME`."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "cinestrain private concepts"
    item.CodingSchemeResponsibleOrganization = "cinestrain"
    return item
