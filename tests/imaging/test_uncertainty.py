"""Measurement uncertainty of morphometry rows (issue 14, point 2)."""
import pytest

from imaging.morphometry import Morphometry, MuscleMeasure, parse_morphometry
from imaging.uncertainty import method_of, plausible_morphometry, plausible_row, row_uncertainty


def _morph(method="built-in seeded watershed (imaging.segment)", contrast="dixon", **row):
    measure = MuscleMeasure(**{"muscle": "multifidus", "side": "left", "level": "L4-L5", "csa_mm2": 800.0,
                               "lean_csa_mm2": 640.0, "fat_fraction": 0.2, **row})
    return Morphometry("S1", (measure,), provenance={"method": method, "contrast": contrast})


@pytest.mark.parametrize("method, contrast, expected", [
    ("built-in seeded watershed (imaging.segment)", "dixon", ("watershed", "watershed")),
    ("built-in anatomical compartments (imaging.segment_anatomical)", "dixon", ("anatomical", "anatomical")),
    ("imported label map", "dixon", ("imported_labels", "imported_labels")),
    ("built-in anatomical compartments (imaging.segment_anatomical) on a pseudo fat map from the single-contrast "
     "image", "single", ("anatomical", "single_contrast")),
    ("", None, ("unknown", "unknown")),
])
def test_the_method_in_the_provenance_picks_the_default_band(method, contrast, expected):
    assert method_of(_morph(method, contrast)) == expected


def test_weakest_and_strongest_rows_move_csa_and_fat_fraction_together():
    morph = _morph()
    band = row_uncertainty(morph, morph.muscles[0])
    assert (band.csa_relative, band.fat_fraction, band.source) == (0.15, 0.03, "watershed")  # multifidus, watershed
    weak, strong = plausible_row(morph.muscles[0], band, True), plausible_row(morph.muscles[0], band, False)
    assert weak.csa_mm2 == pytest.approx(680.0) and weak.fat_fraction == pytest.approx(0.23)
    assert weak.lean_csa_mm2 == pytest.approx(640.0 * 0.85 * 0.77 / 0.8)  # 523.6 mm^2
    assert strong.csa_mm2 == pytest.approx(920.0) and strong.fat_fraction == pytest.approx(0.17)
    assert strong.lean_csa_mm2 == pytest.approx(640.0 * 1.15 * 0.83 / 0.8)


def test_a_row_carries_its_own_uncertainty_and_a_failed_qc_widens_it():
    own = _morph(csa_uncertainty=0.04, fat_fraction_uncertainty=0.01)
    band = row_uncertainty(own, own.muscles[0])
    assert (band.csa_relative, band.fat_fraction, band.source) == (0.04, 0.01, "row")
    doc = own.to_dict()
    assert doc["muscles"][0]["csa_uncertainty"] == 0.04  # written and read back
    assert parse_morphometry(doc, "m.json").muscles[0].fat_fraction_uncertainty == 0.01
    assert "csa_uncertainty" not in _morph().to_dict()["muscles"][0]  # absent stays absent

    row = MuscleMeasure("psoas", "left", "L3-L4", 1400.0, 1330.0, 0.05, qc="warn", qc_reasons=("a reason",))
    band = row_uncertainty(_morph(), row)  # the imaging pipeline's per-row QC status
    assert (band.csa_relative, band.fat_fraction) == (pytest.approx(0.2), pytest.approx(0.06))
    assert "QC warn" in band.source


def test_bad_row_uncertainties_name_the_field():
    from lumbar_twin.errors import InputError

    doc = _morph().to_dict()
    doc["muscles"][0]["csa_uncertainty"] = 1.5
    with pytest.raises(InputError, match=r"muscles\[0\]\.csa_uncertainty"):
        parse_morphometry(doc, "m.json")


def test_the_plausible_morphometry_moves_every_row():
    morph = Morphometry("S1", (_morph().muscles[0], MuscleMeasure("psoas", "right", "L3-L4", 1400.0, 1330.0, 0.05)),
                        provenance={"method": "imported label map"})
    weak = plausible_morphometry(morph, weakest=True)
    assert [r.lean_csa_mm2 / m.lean_csa_mm2 for r, m in zip(weak.muscles, morph.muscles)] == pytest.approx(
        [0.9 * 0.78 / 0.8, 0.95 * 0.93 / 0.95])
