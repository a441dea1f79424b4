"""Issue 14 point 5: model.xml and model.osim muscles are the spec's, in their own engines."""
import math
from dataclasses import replace
from pathlib import Path

import mujoco
import numpy as np
import opensim
import pytest
import yaml

from lumbar_twin.errors import InputError
from twin.build import write_models
from twin.mujoco_model import build_mujoco
from twin.muscle_checks import (ModelCheckError, check_mujoco_muscles, check_opensim_muscles,
                                compiled_muscle_parameters)
from twin.muscle_curves import active_force_length, mujoco_curve_fit
from twin.patient import Patient
from twin.personalise import personalise
from twin.posture import posture
from twin.statics import Statics
from twin.template import TEMPLATE_PATH, load_template


def _patient_spec(template, height_m, mass_kg):
    return personalise(template, Patient(id="P", sex="female", age=50, height_m=height_m, mass_kg=mass_kg))[0]


@pytest.fixture(scope="module")
def written(sample_twin, template, tmp_path_factory):
    """(spec, model.xml, model.osim) of the sample twin and of a 1.25 m and a 2.2 m patient."""
    out = {"sample": (sample_twin.spec, sample_twin.files["model.xml"], sample_twin.files["model.osim"])}
    for name, height, mass in (("1.25 m", 1.25, 30.0), ("2.2 m", 2.2, 120.0)):
        spec = _patient_spec(template, height, mass)
        folder = tmp_path_factory.mktemp(name.replace(" ", "").replace(".", "_"))
        write_models(spec, folder)  # checks both engines on the way
        out[name] = (spec, folder / "model.xml", folder / "model.osim")
    return out


@pytest.mark.parametrize("who", ["sample", "1.25 m", "2.2 m"])
def test_mujoco_compiled_muscle_parameters_match_the_spec_for_every_actuator(written, who):
    spec, xml, _ = written[who]
    model = mujoco.MjModel.from_xml_path(str(xml))
    assert model.nu == len(spec.fascicles) == 124
    got = compiled_muscle_parameters(model, spec.fascicle_names)
    lopt = np.array([f.optimal_fiber_length_m for f in spec.fascicles])
    slack = np.array([f.tendon_slack_length_m for f in spec.fascicles])
    force = np.array([f.max_isometric_force_N for f in spec.fascicles])
    assert np.all(slack > 0) and np.all(got["tendon_slack_length_m"] > 0)
    np.testing.assert_allclose(got["optimal_fiber_length_m"], lopt, rtol=0.05)
    np.testing.assert_allclose(got["tendon_slack_length_m"], slack, rtol=0.05)
    np.testing.assert_allclose(got["force_N"], force, rtol=0.05)
    # unpennated fascicles (all but psoas) carry the spec's numbers to the file's 6 digits
    plain = np.array([f.pennation_rad == 0 for f in spec.fascicles])
    np.testing.assert_allclose(got["optimal_fiber_length_m"][plain], lopt[plain], rtol=1e-4)
    np.testing.assert_allclose(got["tendon_slack_length_m"][plain], slack[plain], rtol=0, atol=2e-6)
    # MuJoCo's range is ours, not its default 0.75..1.05
    assert not np.any(np.isclose(model.actuator_gainprm[:, 0], 0.75))
    report = check_mujoco_muscles(spec, model)
    assert report.max_parameter_error < 0.05
    # MuJoCo's normalised length; psoas's straight-line stand-in for pennation departs by <= 0.0064
    assert 0.5 - 0.0065 <= report.fiber_range[0] and report.fiber_range[1] <= 1.6 + 1e-4


def test_mujoco_muscle_force_equals_the_toolkit_force_at_poses_and_activations(written):
    """mj_forward at neutral and the exercise library's extremes, three activations: where both
    force-length curves are within 5 % of each other (normalised fibre 0.76-1.19), MuJoCo's
    force is within 5 % of a F_max of the toolkit's; elsewhere within the curves' difference."""
    spec, xml, _ = written["sample"]
    model = mujoco.MjModel.from_xml_path(str(xml))
    data = mujoco.MjData(model)
    statics = Statics(spec)
    fit = mujoco_curve_fit(spec.fiber_working_range)
    fmax = np.array([f.max_isometric_force_N * math.cos(f.pennation_rad) for f in spec.fascicles])
    qpos = [model.jnt_qposadr[model.joint(c).id] for c in spec.coordinate_names]
    acts = [model.actuator(n).id for n in spec.fascicle_names]
    poses = [posture(spec, *np.radians(angles)) for angles in
             ((0, 0, 0), (30, 0, 0), (20, 0, 0), (0, 20, 0), (0, -20, 0), (0, 0, 6), (0, 0, -6), (60, 0, 0))]
    errors, in_band = [], []
    for pose in poses:
        data.qpos[qpos] = [pose[c] for c in spec.coordinate_names]
        forces = {}
        for a in (0.0, 0.2, 0.6, 1.0):
            data.act[:] = a
            mujoco.mj_forward(model, data)
            forces[a] = -data.actuator_force[acts].copy()
        length = data.actuator_length[acts]
        fiber = statics.normalized_fiber_lengths(length)
        toolkit = statics.strength(length)
        for a in (0.2, 0.6, 1.0):
            errors.append(np.abs(forces[a] - forces[0.0] - a * toolkit) / (a * fmax))
            in_band.append((fiber >= fit.within_5_percent[0]) & (fiber <= fit.within_5_percent[1]))
    errors, in_band = np.array(errors), np.array(in_band)
    assert in_band[:3].all()  # neutral: every fibre where the curves agree
    assert in_band.mean() > 0.8
    assert errors[in_band].max() <= 0.05
    assert errors.max() <= fit.active_gap + 0.01 <= 0.10


def test_mujoco_force_length_curve_is_fitted_to_the_toolkit_curve_which_is_opensims():
    muscle = opensim.DeGrooteFregly2016Muscle()
    x = np.linspace(0.3, 1.8, 31)
    np.testing.assert_allclose(active_force_length(x), [muscle.calcActiveForceLengthMultiplier(v) for v in x],
                               atol=1e-12)
    fit = mujoco_curve_fit((0.5, 1.6))
    assert fit.lmin < 0.5 and fit.lmax > 1.6
    assert fit.active_gap < 0.09  # MuJoCo's piecewise quadratic, best minimax: 9 % of peak at worst
    assert fit.within_5_percent[0] < 0.84 and fit.within_5_percent[1] > 1.15  # neutral fibres inside


@pytest.mark.parametrize("who", ["sample", "1.25 m", "2.2 m"])
def test_opensim_fibres_stay_on_the_working_range_over_the_range_of_motion(written, who):
    spec, _, osim_path = written[who]
    report = check_opensim_muscles(spec, opensim.Model(str(osim_path)))
    assert report.poses >= 28
    assert 0.5 - 1e-6 <= report.fiber_range[0] < 0.6 and 1.5 < report.fiber_range[1] <= 1.6 + 1e-6


def _slacker(spec, name, extra_m):
    fascicles = tuple(replace(f, tendon_slack_length_m=f.tendon_slack_length_m + extra_m) if f.name == name else f
                      for f in spec.fascicles)
    return replace(spec, fascicles=fascicles)


def test_an_inconsistent_fascicle_stops_the_build_named(template, tmp_path):
    """Tendon slack 15 mm too long for mf_L3_lam_r: at the shortest its fibre would be < 0.5."""
    bad = _slacker(template, "mf_L3_lam_r", 0.015)
    with pytest.raises(ModelCheckError, match=r"OpenSim muscle mf_L3_lam_r: normalised fibre length 0\.\d+"):
        write_models(bad, tmp_path)
    with pytest.raises(ModelCheckError, match=r"MuJoCo actuator mf_L3_lam_r: normalised fibre length"):
        check_mujoco_muscles(bad, build_mujoco(bad))
    # a compiled model that is not the spec's (optimal fibre length 10 % off) is named too
    other = replace(template, fascicles=tuple(
        replace(f, optimal_fiber_length_m=f.optimal_fiber_length_m * 1.1) if f.name == "io_2_l" else f
        for f in template.fascicles))
    with pytest.raises(ModelCheckError, match=r"MuJoCo actuator io_2_l: compiled optimal fibre length [\d.]+ .*\(9\.1% off"):
        check_mujoco_muscles(other, build_mujoco(template))


def test_a_template_whose_fascicle_cannot_work_over_the_range_of_motion_is_refused(tmp_path):
    raw = yaml.safe_load(Path(TEMPLATE_PATH).read_text(encoding="utf-8"))
    raw["fiber_operating_range"]["working_range"] = [0.8, 1.2]
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(InputError, match=r"template.yaml: fascicle \w+: its path runs from [\d.]+ to [\d.]+ mm"):
        load_template(path)


def test_opensim_fibre_lengths_are_the_toolkits(written):
    """OpenSim's own equilibrated fibre (rigid tendon, constant-height pennation) against the
    toolkit's, at neutral and a flexed, bent and turned posture."""
    spec, _, osim_path = written["sample"]
    model = opensim.Model(str(osim_path))
    state = model.initSystem()
    statics = Statics(spec)
    muscles = [model.getMuscles().get(n) for n in spec.fascicle_names]
    for angles in ((0, 0, 0), (45, 15, -5)):
        for name, value in posture(spec, *np.radians(angles)).items():
            model.getCoordinateSet().get(name).setValue(state, value, False)
        model.equilibrateMuscles(state)
        model.realizeVelocity(state)
        lengths = np.array([m.getLength(state) for m in muscles])
        theirs = np.array([m.getNormalizedFiberLength(state) for m in muscles])
        np.testing.assert_allclose(theirs, statics.normalized_fiber_lengths(lengths), rtol=1e-9)
