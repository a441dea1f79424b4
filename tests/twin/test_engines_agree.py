"""OpenSim and MuJoCo models written from one spec have the same geometry (issue 2, item 7)."""
import mujoco
import numpy as np
import opensim as osim
import pytest

from twin.engines import MujocoEngine, OpenSimEngine
from twin.kinematics import fascicle_lengths

N_POSES = 20
MAX_ANGLE_RAD = np.radians(14.0)
LENGTH_RTOL = 0.005
ARM_RTOL, ARM_ATOL_M, SMALL_ARM_M = 0.01, 0.0005, 0.005


def random_poses(spec, seed=2026):
    rng = np.random.default_rng(seed)
    return [{c: rng.uniform(-MAX_ANGLE_RAD, MAX_ANGLE_RAD) for c in spec.coordinate_names} for _ in range(N_POSES)]


@pytest.fixture(scope="module")
def engines_from_files(sample_twin):
    spec, files = sample_twin.spec, sample_twin.files
    return (OpenSimEngine(spec, osim.Model(str(files["model.osim"]))),
            MujocoEngine(spec, mujoco.MjModel.from_xml_path(str(files["model.xml"]))))


@pytest.mark.slow
def test_written_models_agree_on_lengths_and_moment_arms(sample_twin, engines_from_files):
    opensim_engine, mujoco_engine = engines_from_files
    worst_length, worst_arm = 0.0, 0.0
    for pose in random_poses(sample_twin.spec):
        lo, lm = opensim_engine.lengths(pose), mujoco_engine.lengths(pose)
        np.testing.assert_allclose(lm, lo, rtol=LENGTH_RTOL)
        ao, am = opensim_engine.moment_arms(pose), mujoco_engine.moment_arms(pose)
        tolerance = np.where(np.abs(ao) < SMALL_ARM_M, ARM_ATOL_M, ARM_RTOL * np.abs(ao))
        assert np.all(np.abs(am - ao) <= tolerance)
        worst_length = max(worst_length, np.max(np.abs(lm - lo) / lo))
        worst_arm = max(worst_arm, np.max(np.abs(am - ao)))
    print(f"\nworst relative length difference {worst_length:.2e}, worst moment-arm difference {worst_arm:.2e} m")


def test_moment_arms_are_minus_length_derivatives(template):
    """-ten_J is the moment arm: compare with central differences of the numpy kinematics."""
    engine = MujocoEngine(template)
    pose = random_poses(template, seed=7)[0]
    arms = engine.moment_arms(pose)
    step = 1e-6
    for j, name in enumerate(template.coordinate_names):
        plus, minus = dict(pose), dict(pose)
        plus[name] += step
        minus[name] -= step
        numeric = -(fascicle_lengths(template, plus) - fascicle_lengths(template, minus)) / (2 * step)
        np.testing.assert_allclose(arms[:, j], numeric, atol=1e-7)


def test_fascicles_have_no_arm_about_levels_they_do_not_cross(template):
    engine = MujocoEngine(template)
    arms = engine.moment_arms(random_poses(template, seed=3)[0])
    for i, fascicle in enumerate(template.fascicles):
        for j, coord in enumerate(template.coordinates):
            level = coord.name[:5].replace("_", "-")
            if level not in fascicle.levels:
                assert abs(arms[i, j]) < 1e-12, (fascicle.name, coord.name)


def test_same_names_in_both_engines(sample_twin, engines_from_files):
    opensim_engine, mujoco_engine = engines_from_files
    osim_model, mj_model = opensim_engine.model, mujoco_engine.model
    muscles = osim_model.getMuscles()
    osim_muscles = {muscles.get(i).getName() for i in range(muscles.getSize())}
    mj_actuators = {mj_model.actuator(i).name for i in range(mj_model.nu)}
    assert osim_muscles == mj_actuators == set(sample_twin.spec.fascicle_names)
    coords = osim_model.getCoordinateSet()
    osim_coords = [coords.get(i).getName() for i in range(coords.getSize())]
    mj_joints = [mj_model.joint(i).name for i in range(mj_model.njnt)]
    assert osim_coords == mj_joints == list(sample_twin.spec.coordinate_names)
