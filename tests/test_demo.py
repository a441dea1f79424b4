"""`make demo` (lumbar-twin demo) end to end, small: the phantom and the real scan each reach a
verified, checked device profile, and index.html shows both."""
import pytest

from app.demo import run_demo


@pytest.mark.slow
def test_demo_takes_a_phantom_and_a_real_scan_to_verified_profiles(tmp_path):
    result = run_demo(tmp_path / "demo", trials=30, say=lambda line: None)
    assert result.figures["export"]["check"] == "ok"
    real = result.real
    assert real["verified"] and real["check"] == "ok"
    assert real["levels_found"] == ["L2-L3", "L3-L4", "L4-L5"] and real["levels_missing"] == ["L1-L2", "L5-S1"]
    assert set(real["against_manual_labels"]) == {f"{m} {s}" for m in ("erector_spinae", "multifidus")
                                                   for s in ("left", "right")}
    assert real["template_rows"] == 16  # 4 muscles x 2 sides at the 2 levels not in view
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "The same on a real scan" in page and "real/plan/profile.json" in page
    for path in ("real/plan/profile.json", "real/segmentation/qc.png", "plan/profile.csv"):
        assert (tmp_path / "demo" / path).exists()
