"""`lumbar-twin simulate` and its Python twin `twin.simulate.simulate` (issue 3, item 6)."""
import json

import numpy as np
import pytest

from app.cli import main
from twin.simulate import load_twin, simulate
from twin.spec import GROUPS, LEVELS
from twin.statics import ExternalLoad, StaticsResult


def test_json_output_has_levels_activations_and_reserve_share(sample_twin, capsys):
    args = ["simulate", str(sample_twin.directory), "--flexion", "30", "--hand-load-kg", "5", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["levels"]) == set(LEVELS)
    for load in doc["levels"].values():
        assert set(load) == {"compression_N", "ap_shear_N", "lat_shear_N"}
    assert set(doc["activations"]) == set(GROUPS)
    for sides in doc["activations"].values():
        assert set(sides) == {"left", "right"} and all(0 <= v <= 1 for v in sides.values())
    assert 0 <= doc["reserve_share"] < 0.05

    result = simulate(load_twin(sample_twin.directory), flexion_deg=30, hand_load_kg=5)
    assert isinstance(result, StaticsResult)
    assert result.levels["L4-L5"].compression_N == pytest.approx(doc["levels"]["L4-L5"]["compression_N"])


def test_table_output_is_readable(sample_twin, capsys):
    assert main(["simulate", str(sample_twin.directory), "--flexion", "20",
                 "--force", "contact=thorax_pad,fx=60,fy=0,fz=0"]) == 0
    out = capsys.readouterr().out
    assert "compression N" in out and "L4-L5" in out and "multifidus" in out


def test_a_posterior_pad_push_unloads_the_extensors(sample_twin):
    """A forward push on the back at T10 adds flexion moment: extensors must work harder;
    a backward push (the robot assisting extension) lets them relax."""
    twin = load_twin(sample_twin.directory)
    free = simulate(twin, flexion_deg=30)
    assisted = simulate(twin, flexion_deg=30, forces=[ExternalLoad("thorax_pad", (-60.0, 0.0, 0.0))])
    resisted = simulate(twin, flexion_deg=30, forces=[ExternalLoad("thorax_pad", (60.0, 0.0, 0.0))])
    es = lambda r: r.groups["erector_spinae"]["left"] + r.groups["erector_spinae"]["right"]  # noqa: E731
    assert es(assisted) < es(free) < es(resisted)
    assert assisted.levels["L4-L5"].compression_N < free.levels["L4-L5"].compression_N


def test_activation_caps_from_the_patient_file_hold(sample_twin):
    twin = load_twin(sample_twin.directory)
    assert twin.activation_caps == {"psoas": 0.5}
    result = simulate(twin, flexion_deg=45, hand_load_kg=10)
    psoas = [a for a, f in zip(result.activations, twin.spec.fascicles) if f.group == "psoas"]
    assert max(psoas) <= 0.5 + 1e-6


def test_a_cap_bounds_every_fascicle_of_its_group_in_simulate(sample_twin):
    """Issue 14, point 4: the cap is on each fascicle, not on the group's mean."""
    from twin.statics import Statics

    twin = load_twin(sample_twin.directory)
    members = np.array([f.group == "multifidus" for f in twin.spec.fascicles])
    free = simulate(twin.spec, flexion_deg=20)
    mean, peak = max(free.groups["multifidus"].values()), free.activations[members].max()
    cap = 0.5 * (mean + peak)  # above the group's mean on either side, below its busiest fascicle
    assert peak > mean + 0.1
    capped = simulate(twin.spec, flexion_deg=20, statics=Statics(twin.spec, {"multifidus": cap}))
    assert capped.activations[members].max() <= cap + 1e-9


@pytest.mark.parametrize("args, message", [
    (["--flexion", "200"], "--flexion: 200 deg puts"),
    (["--force", "contact=knee,fx=1"], "--force: unknown contact 'knee'"),
    (["--hand-load-kg", "-3"], "--hand-load-kg"),
])
def test_bad_simulate_requests_exit_2(sample_twin, capsys, args, message):
    assert main(["simulate", str(sample_twin.directory), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_twin_folder_exits_2(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope")]) == 2
    assert "twin folder not found" in capsys.readouterr().err
