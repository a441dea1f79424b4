"""The template spec: size, names, sources, and physiological sanity against published figures."""
import json

import numpy as np
import pytest

from twin.engines import MujocoEngine
from twin.spec import COORDINATE_NAMES, GROUPS, LEVELS, ModelSpec


def test_model_size_and_names(template):
    assert [b.name for b in template.bodies] == ["pelvis", "L5", "L4", "L3", "L2", "L1", "thorax"]
    assert sorted(template.coordinate_names) == sorted(COORDINATE_NAMES)
    assert len(template.fascicles) > 100
    assert len(set(template.fascicle_names)) == len(template.fascicles)
    assert {f.group for f in template.fascicles} == set(GROUPS)
    left = sorted(f.name[:-2] for f in template.fascicles if f.side == "left")
    right = sorted(f.name[:-2] for f in template.fascicles if f.side == "right")
    assert left == right


def test_psoas_and_multifidus_have_a_fascicle_from_every_lumbar_level(template):
    for group, tag in (("psoas", "ps_L{}_vb_r"), ("multifidus", "mf_L{}_lam_r")):
        names = {f.name for f in template.fascicles if f.group == group}
        assert {tag.format(k) for k in range(1, 6)} <= names


def test_left_side_mirrors_right(template):
    for f in template.fascicles:
        if f.side != "left":
            continue
        twin = template.fascicle(f.name[:-2] + "_r")
        for p, q in zip(f.points, twin.points):
            assert p.body == q.body
            np.testing.assert_allclose(p.location_m, np.array(q.location_m) * [1, 1, -1])
        assert f.max_isometric_force_N == twin.max_isometric_force_N


def test_force_is_pcsa_times_specific_tension_and_group_pcsa_is_preserved(template):
    sigma = template.specific_tension_N_per_cm2
    for f in template.fascicles:
        assert f.max_isometric_force_N == f.pcsa_cm2 * sigma
    multifidus = sum(f.pcsa_cm2 for f in template.fascicles if f.group == "multifidus" and f.side == "right")
    assert abs(multifidus - 23.9) < 1e-9  # Ward et al. 2009, one side


def test_fibres_in_neutral_standing_are_where_sarcomere_data_put_them(template):
    """Extensors short (0.84 of optimal, Ward 2009), the others at optimal length; except where
    the working range over the range of motion needs all the path but the minimum tendon
    (twin.template.fit_working_range), which moves the neutral fibre length: a few, named."""
    from twin.template import MIN_SLACK_FRACTION

    neutral = {"erector_spinae": 0.84, "multifidus": 0.84}
    lengths = MujocoEngine(template).lengths({})
    moved = set()
    for f, length in zip(template.fascicles, lengths):
        fiber = (length - f.tendon_slack_length_m) / np.cos(f.pennation_rad)
        assert f.tendon_slack_length_m > 0
        if fiber / f.optimal_fiber_length_m != pytest.approx(neutral.get(f.group, 1.0), rel=1e-9):
            moved.add(f.name[:-2])
            assert f.tendon_slack_length_m == pytest.approx(MIN_SLACK_FRACTION * length, rel=1e-9)
            assert 0.84 <= fiber / f.optimal_fiber_length_m <= 1.15
    assert moved == {"ql_ic_1", "ql_il_L1", "ql_il_L2", "ql_il_L3", "il_pl_L1", "il_pl_L2", "eo_1"}


def test_extensor_fibres_stay_on_the_physiological_range_in_full_flexion(template):
    """At 60 deg lumbar flexion extensor fibres sit on the descending limb, where they still
    develop force: at 1.25 of optimal unless the fascicle is too short to hold such fibres."""
    from twin.posture import posture
    from twin.statics import active_force_length

    lengths = MujocoEngine(template).lengths(posture(template, np.radians(60)))
    norms = []
    for f, length in zip(template.fascicles, lengths):
        if f.group in ("erector_spinae", "multifidus"):
            norms.append((length - f.tendon_slack_length_m) / np.cos(f.pennation_rad) / f.optimal_fiber_length_m)
    norms = np.array(norms)
    assert np.all(norms > 0.84)  # all lengthen in flexion
    assert np.mean(norms <= 1.25 + 1e-9) >= 0.8
    assert np.all(active_force_length(norms) >= 0.4)


def test_sagittal_moment_arms_match_published_ranges(template):
    """Mean flexion moment arms at L4-L5 against MRI/cadaver figures (docs/model.md)."""
    arms = MujocoEngine(template).moment_arms({})
    j = template.coordinate_names.index("L4_L5_flexion")
    by_group = {}
    for i, f in enumerate(template.fascicles):
        if "L4-L5" in f.levels:
            by_group.setdefault(f.group, []).append(arms[i, j] * 100)  # cm; flexion positive
    mean = {g: float(np.mean(v)) for g, v in by_group.items()}
    assert -6.5 <= mean["erector_spinae"] <= -5.0  # McGill 1993: 5.5-6.5 cm extensor
    assert -6.5 <= mean["multifidus"] <= -4.5
    assert 0.0 <= mean["psoas"] <= 2.5  # Bogduk 1992: small, flexes the lower lumbar spine
    assert 8.0 <= mean["rectus_abdominis"] <= 10.5  # Jorgensen 2005: 8.5 cm at L4/L5 standing


def test_every_block_of_numbers_names_a_source(template):
    for key in ("bodies", "joints", "landmarks", "fascicles", "reference_morphometry",
                "specific_tension_N_per_cm2"):
        assert len(template.sources[key]) > 40, key
    for group in GROUPS:
        assert "20" in template.sources[f"muscle_groups.{group}"]  # a year, i.e. a citation


def test_spec_round_trips_through_json(template):
    again = ModelSpec.from_dict(json.loads(json.dumps(template.to_dict())))
    assert again == template


def test_reference_morphometry_covers_every_imaged_group_and_level(template):
    ref = template.reference_morphometry
    for group in GROUPS[:4]:
        assert set(ref.csa_mm2[group]) == set(LEVELS)
        assert 0 < ref.fat_fraction[group] < 0.3
