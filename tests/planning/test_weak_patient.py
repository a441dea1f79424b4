"""A weak patient's headline names the coordinate and the shortfall in N m (issue 14, point 6)."""
import json

import numpy as np
import pytest

from tests.conftest import SAMPLE_PATIENT


@pytest.fixture(scope="module")
def weak_twin(tmp_path_factory):
    """The sample patient with back extensors at 15 % of their strength."""
    from twin.build import build_twin
    from twin.simulate import load_twin

    folder = tmp_path_factory.mktemp("weak")
    doc = json.loads(SAMPLE_PATIENT.read_text())
    doc.update(id="WEAK-001", morphometry=str(SAMPLE_PATIENT.parent / doc["morphometry"]),
               strength_factors={"erector_spinae": 0.15, "multifidus": 0.15, "quadratus_lumborum": 0.15})
    (folder / "patient.json").write_text(json.dumps(doc))
    build_twin(folder / "patient.json", folder / "twin")
    return load_twin(folder / "twin")


def test_the_headline_is_the_largest_shortfall_in_newton_metres_not_the_largest_share():
    from twin.statics import shortfall

    names = ("L5_S1_flexion", "L5_S1_lateral", "L5_S1_rotation")
    needed = np.array([-160.0, 0.5, 2.0])  # extension needed; a near-zero lateral moment
    reserve = np.array([-65.0, 1.9, 0.0])  # 41 % of the flexion moment, 190 % of the lateral one
    short = shortfall(names, needed, reserve)
    assert short.coordinate == "L5_S1_flexion"
    assert short.headline == "L5-S1 flexion: the extensors give 95 N m of the 160 N m needed"
    assert shortfall(names, np.array([0.0, 30.0, 0.0]), np.array([0.0, 12.0, 0.0])).headline == \
        "L5-S1 lateral: the muscles bending the trunk to the right give 18 N m of the 30 N m needed"


def test_simulate_headlines_the_flexion_shortfall_of_a_weak_patient(weak_twin, capsys):
    from app.cli import main

    assert main(["simulate", str(weak_twin.directory), "--flexion", "30"]) == 0
    out = capsys.readouterr().out
    flagged = next(line for line in out.splitlines() if "FLAGGED" in line)
    assert "flexion: the extensors give" in flagged and "N m needed" in flagged
    from twin.simulate import simulate

    result = simulate(weak_twin, flexion_deg=30)
    short = result.shortfall
    assert short.needed_Nm < 0 and abs(short.needed_Nm) - abs(short.muscles_Nm) > 5.0  # N m short
    # The largest share sits elsewhere (a small moment): it is not the headline.
    assert result.coordinate_names[int(result.reserve_shares.argmax())] != short.coordinate


def test_an_infeasible_plan_for_a_weak_patient_names_the_shortfall(weak_twin):
    from planning.planner import Infeasible, make_plan, plan_for

    plan = plan_for(weak_twin, exercise="trunk_extension", targets={"multifidus": 0.25}, search={"trials": 12})
    with pytest.raises(Infeasible, match=r"cannot hold the exercise \(L\d-[LS]\d flexion: the extensors give \d+ N m "
                                         r"of the \d+ N m needed"):
        make_plan(weak_twin, plan, opensim_verification=False)
