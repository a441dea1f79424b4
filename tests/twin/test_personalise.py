"""Personalisation rules (docs/model.md) against hand-computed answers."""
from dataclasses import replace

import numpy as np
import pytest

from imaging.morphometry import Morphometry, MuscleMeasure
from twin.engines import MujocoEngine
from twin.patient import Patient
from twin.personalise import personalise
from twin.spec import LEVELS, SIDES


def reference_morphometry(template, edit=None):
    """The template's own reference morphometry, both sides, with optional edits."""
    ref = template.reference_morphometry
    rows = []
    for group in ref.csa_mm2:
        for side in SIDES:
            for level in LEVELS:
                csa, lean = ref.csa_mm2[group][level], ref.lean_csa_mm2(group, level)
                if edit:
                    csa, lean = edit(group, side, level, csa, lean)
                rows.append(MuscleMeasure(group, side, level, csa, lean, 1 - lean / csa))
    return Morphometry("T", tuple(rows))


def template_patient(template, **changes):
    base = Patient(id="T", sex=template.sex, age=40, height_m=template.height_m, mass_kg=template.mass_kg,
                   morphometry=reference_morphometry(template))
    return replace(base, **changes)


@pytest.mark.parametrize("with_morphometry", [True, False])
def test_a_patient_equal_to_the_template_reproduces_it_exactly(template, with_morphometry):
    patient = template_patient(template)
    if not with_morphometry:
        patient = replace(patient, morphometry=None)
    spec, scalings = personalise(template, patient)
    assert replace(spec, name=template.name) == template
    assert all(s.factor == 1.0 for s in scalings)


def test_geometry_scales_with_height(template):
    spec, _ = personalise(template, template_patient(template, height_m=template.height_m * 1.1))
    pose = {"L4_L5_flexion": 0.2, "L2_L3_lateral": -0.1, "L1_L2_rotation": 0.05}
    a, b = MujocoEngine(template), MujocoEngine(spec)
    np.testing.assert_allclose(b.lengths(pose), 1.1 * a.lengths(pose), rtol=1e-12)
    np.testing.assert_allclose(b.moment_arms(pose), 1.1 * a.moment_arms(pose), rtol=1e-9, atol=1e-15)
    for fa, fb in zip(template.fascicles, spec.fascicles):
        assert fb.optimal_fiber_length_m == pytest.approx(1.1 * fa.optimal_fiber_length_m)


def test_inertia_scales_with_mass_and_height(template):
    spec, _ = personalise(template, template_patient(template, height_m=1.925, mass_kg=90.0))
    s, m = 1.925 / 1.75, 90.0 / 75.0
    for ba, bb in zip(template.bodies, spec.bodies):
        assert bb.mass_kg == pytest.approx(m * ba.mass_kg)
        np.testing.assert_allclose(bb.inertia_kg_m2, np.array(ba.inertia_kg_m2) * m * s * s)
        np.testing.assert_allclose(bb.com_m, np.array(ba.com_m) * s)


def test_force_follows_lean_csa_at_the_crossed_levels(template):
    # Left multifidus loses half its lean area at L5-S1 only.
    def atrophy(group, side, level, csa, lean):
        return (csa, lean / 2) if (group, side, level) == ("multifidus", "left", "L5-S1") else (csa, lean)

    patient = template_patient(template, morphometry=reference_morphometry(template, atrophy))
    spec, scalings = personalise(template, patient)
    ref = template.reference_morphometry
    by_name = {s.fascicle: s for s in scalings}
    for fa, fb in zip(template.fascicles, spec.fascicles):
        if fa.group == "multifidus" and fa.side == "left" and "L5-S1" in fa.levels:
            total = sum(ref.lean_csa_mm2("multifidus", lv) for lv in fa.levels)
            expected = (total - ref.lean_csa_mm2("multifidus", "L5-S1") / 2) / total
            assert fb.max_isometric_force_N == pytest.approx(fa.max_isometric_force_N * expected, rel=1e-12)
            assert by_name[fa.name].rule == "lean_csa_at_crossed_levels"
        else:
            assert fb.max_isometric_force_N == pytest.approx(fa.max_isometric_force_N, rel=1e-12)


def test_fat_infiltration_lowers_force_through_lean_csa_only(template):
    # Same CSA, fat fraction doubled on the right erector spinae: force x lean ratio, no extra penalty.
    def fatty(group, side, level, csa, lean):
        if (group, side) == ("erector_spinae", "right"):
            return csa, csa * (1 - 2 * (1 - lean / csa))
        return csa, lean

    spec, _ = personalise(template, template_patient(template, morphometry=reference_morphometry(template, fatty)))
    ff = template.reference_morphometry.fat_fraction["erector_spinae"]
    expected = (1 - 2 * ff) / (1 - ff)
    for fa, fb in zip(template.fascicles, spec.fascicles):
        if (fa.group, fa.side) == ("erector_spinae", "right"):
            assert fb.max_isometric_force_N == pytest.approx(fa.max_isometric_force_N * expected, rel=1e-9)


def test_unmeasured_levels_fall_back_to_the_group_mean_and_abdominals_to_mass(template):
    only_l4 = Morphometry("T", tuple(
        m for m in reference_morphometry(template, lambda g, s, lv, c, le: (c, le * 0.8)).muscles
        if m.level == "L4-L5"))
    spec, scalings = personalise(template, template_patient(template, mass_kg=60.0, morphometry=only_l4))
    by_name = {s.fascicle: s for s in scalings}
    upper = by_name["mf_L1_L4_r"]  # crosses L1-L2..L3-L4, none measured
    assert upper.rule == "lean_csa_group_mean" and upper.factor == pytest.approx(0.8)
    assert by_name["mf_L4_S2_r"].rule == "lean_csa_at_crossed_levels"
    assert by_name["ra_r"].rule == "mass_2_3"
    assert by_name["ra_r"].factor == pytest.approx((60 / 75) ** (2 / 3))


def test_strength_factors_multiply(template):
    patient = template_patient(template, strength_factors={"psoas": 0.5})
    spec, _ = personalise(template, patient)
    for fa, fb in zip(template.fascicles, spec.fascicles):
        factor = 0.5 if fa.group == "psoas" else 1.0
        assert fb.max_isometric_force_N == pytest.approx(factor * fa.max_isometric_force_N)


def test_the_plausible_patients_scale_each_fascicle_by_its_rows_lean_csa_band(sample_twin):
    """Issue 14, point 2: weakest/strongest plausible patient = the same rules on the morphometry
    band; a fascicle's force moves with the lean CSA of the rows it was scaled by, and the twin
    folder carries both force sets."""
    import numpy as np

    from imaging.uncertainty import plausible_row, row_uncertainty
    from twin.simulate import load_twin

    patient, morph = sample_twin.patient, sample_twin.patient.morphometry
    specs = load_twin(sample_twin.directory).plausible_specs()
    assert set(specs) == {"weakest plausible", "strongest plausible"}
    checked = 0
    for label, weakest in (("weakest plausible", True), ("strongest plausible", False)):
        for f, other, scaling in zip(sample_twin.spec.fascicles, specs[label].fascicles, sample_twin.scalings):
            if scaling.rule == "mass_2_3":
                assert other.max_isometric_force_N == pytest.approx(f.max_isometric_force_N)  # not measured
                continue
            rows = [r for r in morph.muscles if (r.muscle, r.side) == (f.group, f.side) and r.level in scaling.levels]
            moved = sum(plausible_row(r, row_uncertainty(morph, r), weakest).lean_csa_mm2 for r in rows)
            assert other.max_isometric_force_N / f.max_isometric_force_N == pytest.approx(
                moved / sum(r.lean_csa_mm2 for r in rows), rel=1e-6)
            checked += 1
    assert checked > 100
    weak = np.array([f.max_isometric_force_N for f in specs["weakest plausible"].fascicles])
    point = np.array([f.max_isometric_force_N for f in sample_twin.spec.fascicles])
    assert 0.8 < (weak / point).min() < 0.9  # the watershed band: about 10-15 % CSA and 0.03 fat fraction
    assert patient.morphometry is not None
