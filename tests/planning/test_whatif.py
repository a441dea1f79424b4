"""what-if's exercise speed, timing shift and peak shape (issue 15, what-if): checked against the
profile's own samples, which these changes move, scale or stretch in a known way."""
import json

import numpy as np
import pytest

from app.cli import main
from lumbar_twin.errors import InputError
from planning.export import read_profile
from planning.whatif import reshape, what_if


def _rate(forces, rate_hz):
    return np.linalg.norm(np.diff(forces, axis=0, append=forces[:1]), axis=1).max() * rate_hz


def test_speed_plays_motion_and_force_faster_and_the_device_rate_limit_sees_it(exported_plan, loaded_twin):
    profile = exported_plan / "profile.json"
    doc, _, forces = read_profile(profile)
    assert doc["cycle_s"] == 6.0 and len(forces) == 600
    own_rate = _rate(forces, doc["rate_hz"])
    # a device whose rate limit the verified profile keeps, but not at twice the speed
    device = {"device": {"max_rate_N_per_s": 1.5 * own_rate}}
    same = what_if(loaded_twin, profile, overlay=device)
    fast = what_if(loaded_twin, profile, overlay=device, speed=2.0)
    assert same.device_problems == () and not same.changed
    assert fast.exercise.cycle_s == 3.0 and len(fast.times_s) == 300 and fast.changed
    # the same force at the same phase: sample k of the 3 s cycle is sample 2k of the 6 s one
    np.testing.assert_allclose(fast.forces_N, forces[::2], atol=1e-9)
    # the motion plays faster too: upright (flexion 0) at half the shorter cycle, 30 deg at its start
    assert fast.exercise.angles_deg(1.5)["flexion"] == pytest.approx(0.0)
    assert fast.exercise.angles_deg(0.75)["flexion"] == pytest.approx(same.exercise.angles_deg(1.5)["flexion"])
    assert fast.evaluation.times_s[-1] == pytest.approx(2.99)
    # same poses at the same phase: quasi-static loads match sample for sample
    np.testing.assert_allclose(fast.evaluation.compression_N, same.evaluation.compression_N[::2], rtol=1e-6)
    assert _rate(fast.forces_N, doc["rate_hz"]) == pytest.approx(2 * own_rate, rel=0.05)
    assert fast.peak_rate_N_per_s == pytest.approx(_rate(fast.forces_N, doc["rate_hz"]))
    assert same.peak_rate_N_per_s == pytest.approx(own_rate) and fast.peak_force_N == pytest.approx(same.peak_force_N)
    assert any("rate of change" in p for p in fast.device_problems), fast.device_problems
    slow = what_if(loaded_twin, profile, speed=0.5)
    assert slow.exercise.cycle_s == 12.0 and len(slow.times_s) == 1200
    np.testing.assert_allclose(slow.forces_N[::2], forces, atol=1e-9)


def test_shift_and_shape_move_and_sharpen_the_force_as_defined(exported_plan, loaded_twin):
    profile = exported_plan / "profile.json"
    _, _, forces = read_profile(profile)
    later = what_if(loaded_twin, profile, shift_pct=25.0)
    np.testing.assert_allclose(later.forces_N, np.roll(forces, 150, axis=0), atol=1e-9)  # 25 % of 600 samples
    sharp = what_if(loaded_twin, profile, shape=2.0)
    m, m2 = np.linalg.norm(forces, axis=1), np.linalg.norm(sharp.forces_N, axis=1)
    assert m2.max() == pytest.approx(m.max())  # the peak force is kept
    np.testing.assert_allclose(m2, m.max() * (m / m.max()) ** 2, rtol=1e-9)
    pushing = m > 1.0
    np.testing.assert_allclose(sharp.forces_N[pushing] / m2[pushing, None], forces[pushing] / m[pushing, None],
                               atol=1e-9)  # direction kept sample by sample
    if m.min() < 0.99 * m.max():  # a profile that varies: less help between peaks
        assert sharp.forces_N.sum() != pytest.approx(forces.sum())
    # a constant force has no peak to sharpen
    phase = np.arange(10) / 10
    flat = np.tile([10.0, 0.0, 0.0], (10, 1))
    np.testing.assert_allclose(reshape(phase, flat, shape=3.0, shift_pct=-20.0), flat)


@pytest.mark.parametrize("kwargs, option", [({"speed": 2.5}, "--speed"), ({"speed": float("nan")}, "--speed"),
                                            ({"shape": 0.1}, "--shape"), ({"shift_pct": 60.0}, "--shift")])
def test_out_of_range_speed_shape_or_shift_is_refused(exported_plan, loaded_twin, kwargs, option):
    with pytest.raises(InputError, match="outside the") as info:
        what_if(loaded_twin, exported_plan / "profile.json", **kwargs)
    assert option in str(info.value)


def test_whatif_cli_speed_shape_shift(exported_plan, loaded_twin, tmp_path, capsys):
    args = ["whatif", str(loaded_twin.directory), "--profile", str(exported_plan / "profile.json"),
            "--out", str(tmp_path / "w.png")]
    assert main(args + ["--speed", "1.5", "--shape", "2", "--shift", "-10"]) == 0
    out = capsys.readouterr().out
    assert "speed 1.5 (4 s a cycle, 400 samples), shape 2, shifted -10 % of the cycle" in out
    assert main(args + ["--speed", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--speed" in err and "0.5..2" in err
    assert json.loads((exported_plan / "profile.json").read_text())["cycle_s"] == 6.0
