"""Template ModelSpec + Patient -> the patient's ModelSpec.

Rules (docs/model.md gives sources and reasons):
1. Geometry scales uniformly with height: s = height / template height. Every point, joint
   location, contact and centre of mass is multiplied by s, and so are optimal fibre and tendon slack
   lengths, which keeps every fibre at the length the template gives it in a pose.
2. Inertia follows mass: masses x m = mass / template mass, inertias x m s^2.
3. Muscle force follows lean (fat-free) CSA: a fascicle of group g on side k crossing levels
   L gets F = F_template x sum_L(lean CSA of the patient) / sum_L(lean CSA of the template),
   summed over the crossed levels that were measured (else over all measured levels of g, k).
   Groups without MRI measures (abdominals), or patients without morphometry, scale by
   m^(2/3) (geometric similarity: area ~ volume^(2/3)). Strength factors multiply the result.
4. Passive intervertebral stiffness is not scaled (no published scaling law).

A patient with the template's anthropometry and reference morphometry gets the template back,
bit for bit: every factor is exactly 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from imaging.uncertainty import plausible_morphometry
from twin.patient import Patient
from twin.spec import Body, Fascicle, Joint, ModelSpec, PathPoint


@dataclass(frozen=True)
class ForceScaling:
    """How one fascicle's maximum isometric force was personalised."""

    fascicle: str
    factor: float
    rule: str  # 'lean_csa_at_crossed_levels' | 'lean_csa_group_mean' | 'mass_2_3'
    levels: tuple[str, ...]


def personalise(template: ModelSpec, patient: Patient) -> tuple[ModelSpec, tuple[ForceScaling, ...]]:
    s = patient.height_m / template.height_m
    m = patient.mass_kg / template.mass_kg
    scalings = tuple(force_scaling(template, patient, f) for f in template.fascicles)
    spec = replace(
        template,
        name=f"lumbar-twin-{patient.id}",
        sex=patient.sex,
        height_m=patient.height_m,
        mass_kg=patient.mass_kg,
        bodies=tuple(_body(b, s, m) for b in template.bodies),
        joints=tuple(_joint(j, s) for j in template.joints),
        fascicles=tuple(_fascicle(f, s, sc.factor) for f, sc in zip(template.fascicles, scalings)),
        contacts=tuple(replace(c, location_m=_scaled(c.location_m, s)) for c in template.contacts),
    )
    return spec, scalings


def force_scaling(template: ModelSpec, patient: Patient, fascicle: Fascicle) -> ForceScaling:
    strength = patient.strength_factors.get(fascicle.group, 1.0)
    morph = patient.morphometry
    ref = template.reference_morphometry
    if morph is not None and fascicle.group in ref.csa_mm2:
        measured = [mm for mm in morph.muscles if (mm.muscle, mm.side) == (fascicle.group, fascicle.side)]
        crossed = [mm for mm in measured if mm.level in fascicle.levels]
        for rows, rule in ((crossed, "lean_csa_at_crossed_levels"), (measured, "lean_csa_group_mean")):
            reference = sum(ref.lean_csa_mm2(fascicle.group, mm.level) for mm in rows)
            if rows and reference > 0:
                ratio = sum(mm.lean_csa_mm2 for mm in rows) / reference
                return ForceScaling(fascicle.name, ratio * strength, rule, tuple(mm.level for mm in rows))
    mass_ratio = patient.mass_kg / template.mass_kg
    return ForceScaling(fascicle.name, mass_ratio ** (2.0 / 3.0) * strength, "mass_2_3", ())


def _scaled(v, s: float):
    return tuple(x * s for x in v)


def _body(body: Body, s: float, m: float) -> Body:
    return replace(body, mass_kg=body.mass_kg * m, com_m=_scaled(body.com_m, s),
                   inertia_kg_m2=_scaled(body.inertia_kg_m2, m * s * s))


def _joint(joint: Joint, s: float) -> Joint:
    return replace(joint, location_m=_scaled(joint.location_m, s))


def _fascicle(f: Fascicle, s: float, force_factor: float) -> Fascicle:
    return replace(
        f,
        points=tuple(PathPoint(p.body, _scaled(p.location_m, s)) for p in f.points),
        optimal_fiber_length_m=f.optimal_fiber_length_m * s,
        tendon_slack_length_m=f.tendon_slack_length_m * s,
        max_isometric_force_N=f.max_isometric_force_N * force_factor,
    )


#: The plausible patients a plan must be safe for, besides the point estimate.
PLAUSIBLE = ("weakest plausible", "strongest plausible")


def plausible_forces(template: ModelSpec, patient: Patient) -> dict[str, tuple[float, ...]]:
    """Each fascicle's maximum isometric force [N] for the weakest and strongest plausible
    patient: the same rules with every measured row at the weak (strong) end of its band
    (imaging/uncertainty.py). Without morphometry both equal the point estimate."""
    out = {}
    for label, weakest in zip(PLAUSIBLE, (True, False)):
        other = patient if patient.morphometry is None else \
            replace(patient, morphometry=plausible_morphometry(patient.morphometry, weakest))
        spec, _ = personalise(template, other)
        out[label] = tuple(f.max_isometric_force_N for f in spec.fascicles)
    return out
