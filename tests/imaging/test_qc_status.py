"""The QC picture's per-level status: an empty panel must not read as a pass."""
import numpy as np

from imaging.levels import Levels
from imaging.morphometry import MuscleMeasure, Morphometry
from imaging.qc import _level_status, draw_qc


def _row(muscle, side, level, qc="pass"):
    return MuscleMeasure(muscle, side, level, csa_mm2=900.0, lean_csa_mm2=800.0, fat_fraction=0.1, qc=qc)


def test_a_level_without_rows_fails_and_a_muscle_missing_there_is_named():
    rows = [_row(m, s, lv) for lv in ("L2-L3", "L3-L4") for m in ("psoas", "multifidus") for s in ("left", "right")]
    rows = [r for r in rows if not (r.level == "L3-L4" and r.muscle == "psoas" and r.side == "right")]
    rows.append(_row("erector_spinae", "left", "L3-L4", qc="warn"))
    morphometry = Morphometry("s1", tuple(rows))
    assert _level_status(morphometry, "L1-L2") == "fail: no muscle found"
    assert _level_status(morphometry, "L2-L3") == "missing: erector spinae L"
    assert _level_status(morphometry, "L3-L4") == "missing: psoas R\nwarn: erector spinae L"
    full = Morphometry("s1", tuple(_row(m, s, "L2-L3") for m in ("psoas", "multifidus") for s in ("left", "right")))
    assert _level_status(full, "L2-L3") == "pass"


def test_draw_qc_writes_a_picture_for_a_level_with_nothing_found(tmp_path):
    water = np.random.default_rng(0).random((40, 30, 6)).astype(np.float32)
    labels = np.zeros(water.shape, np.uint8)
    levels = Levels({"L3-L4": 2.0, "L4-L5": 4.0}, "test")
    morphometry = Morphometry("s1", (_row("psoas", "left", "L4-L5"),))
    draw_qc(water, labels, levels, morphometry, (1.0, 1.0, 4.0), tmp_path / "qc.png")
    assert (tmp_path / "qc.png").stat().st_size > 1000



def test_a_long_status_line_is_wrapped():
    """Three long row names on one line ran over the next panel's title (the real scan's L3-L4)."""
    from imaging.qc import TITLE_CHARS
    rows = [_row("quadratus_lumborum", "left", "L3-L4", "warn"), _row("quadratus_lumborum", "right", "L3-L4", "warn"),
            _row("multifidus", "right", "L3-L4", "warn"), _row("psoas", "left", "L3-L4")]
    text = _level_status(Morphometry("s1", tuple(rows)), "L3-L4")
    assert text.replace("\n", " ") == "warn: quadratus lumborum L, quadratus lumborum R, multifidus R"
    assert all(len(line) <= TITLE_CHARS for line in text.splitlines())
