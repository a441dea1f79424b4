"""The bundled sample patient's morphometry is what the pipeline measures on its phantom MRI
(`make sample-mri`: phantom seed 1, left-sided atrophy, the watershed method written with that
phantom), not numbers written by hand."""
import json

import pytest

from imaging.phantom import make_phantom, write_phantom
from imaging.pipeline import run_segmentation
from tests.conftest import SAMPLE_PATIENT


@pytest.mark.slow
def test_sample_morphometry_comes_from_the_sample_mri(tmp_path):
    files = write_phantom(make_phantom(1, variant="atrophy"), tmp_path / "mri")
    result = run_segmentation(tmp_path / "seg", water=files["water"], fat=files["fat"],
                              vertebrae=files["vertebrae"], subject="SAMPLE-001", method="watershed")
    bundled = json.loads((SAMPLE_PATIENT.parent / "morphometry.json").read_text())
    measured = json.loads((tmp_path / "seg" / "morphometry.json").read_text())
    assert bundled["subject"] == measured["subject"] == json.loads(SAMPLE_PATIENT.read_text())["id"]
    assert len(bundled["muscles"]) == len(measured["muscles"]) == 40
    for ours, theirs in zip(bundled["muscles"], measured["muscles"]):
        assert (ours["muscle"], ours["side"], ours["level"]) == (theirs["muscle"], theirs["side"], theirs["level"])
        assert ours["csa_mm2"] == pytest.approx(theirs["csa_mm2"], abs=0.5)
        assert ours["fat_fraction"] == pytest.approx(theirs["fat_fraction"], abs=0.001)
    assert result.levels.found == ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
