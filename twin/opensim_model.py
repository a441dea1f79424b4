"""ModelSpec -> OpenSim model (.osim).

The pelvis is welded to ground; each intervertebral joint is a CustomJoint whose three
rotational TransformAxes carry the level's coordinates in spec order (no couplers: the toolkit
applies lumbar rhythm itself); T12-L1 is a WeldJoint. Fascicles are DeGrooteFregly2016
muscles (rigid tendon) on straight-line paths through the spec's points; passive
intervertebral stiffness is a SpringGeneralizedForce per coordinate.
"""
from __future__ import annotations

from pathlib import Path

import opensim as osim

from twin.spec import Joint, ModelSpec

# OpenSim logs to ./opensim.log by default: a toolkit must not litter the user's folder.
osim.Logger.removeFileSink()

_TRANSLATION_AXES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def build_opensim(spec: ModelSpec) -> osim.Model:
    """An OpenSim Model with connections finalised (call `initSystem()` to use it)."""
    model = osim.Model()
    model.setName(spec.name)
    model.set_credits("lumbar-twin; sources in twin.json")
    model.setGravity(osim.Vec3(*spec.gravity_m_per_s2))

    bodies = {}
    for body in spec.bodies:
        ixx, iyy, izz, ixy, ixz, iyz = body.inertia_kg_m2
        handle = osim.Body(body.name, body.mass_kg, osim.Vec3(*body.com_m),
                           osim.Inertia(ixx, iyy, izz, ixy, ixz, iyz))
        model.addBody(handle)
        bodies[body.name] = handle

    root = spec.bodies[0].name
    model.addJoint(osim.WeldJoint(f"ground_{root}", model.getGround(), osim.Vec3(0), osim.Vec3(0),
                                  bodies[root], osim.Vec3(0), osim.Vec3(0)))
    for joint in spec.joints:
        model.addJoint(_joint(joint, bodies))
        for coord in joint.coordinates:
            spring = osim.SpringGeneralizedForce(coord.name)
            spring.setName(f"{coord.name}_stiffness")
            spring.setStiffness(coord.stiffness_Nm_per_rad)
            spring.setRestLength(0.0)
            spring.setViscosity(0.0)
            model.addForce(spring)

    for fascicle in spec.fascicles:
        muscle = osim.DeGrooteFregly2016Muscle()
        muscle.setName(fascicle.name)
        muscle.set_max_isometric_force(fascicle.max_isometric_force_N)
        muscle.set_optimal_fiber_length(fascicle.optimal_fiber_length_m)
        muscle.set_tendon_slack_length(fascicle.tendon_slack_length_m)
        muscle.set_pennation_angle_at_optimal(fascicle.pennation_rad)
        muscle.set_ignore_tendon_compliance(True)
        for k, point in enumerate(fascicle.points):
            muscle.addNewPathPoint(f"{fascicle.name}_p{k}", bodies[point.body], osim.Vec3(*point.location_m))
        model.addForce(muscle)

    model.finalizeConnections()
    return model


def write_opensim(spec: ModelSpec, path: str | Path) -> None:
    """Write `.osim` to `path` (callers write into a staging folder; see twin.build)."""
    build_opensim(spec).printToXML(str(path))


def _joint(joint: Joint, bodies) -> osim.Joint:
    parent, child = bodies[joint.parent], bodies[joint.child]
    location, orientation = osim.Vec3(*joint.location_m), osim.Vec3(*joint.orientation_rad)
    if not joint.coordinates:
        return osim.WeldJoint(joint.name, parent, location, orientation, child, osim.Vec3(0), osim.Vec3(0))
    transform = osim.SpatialTransform()
    for k, coord in enumerate(joint.coordinates):
        axis = transform.updTransformAxis(k)
        axis.setCoordinateNames(osim.ArrayStr(coord.name, 1))
        axis.setAxis(osim.Vec3(*coord.axis))
        axis.set_function(osim.LinearFunction())  # copies; setFunction() would take ownership
    for k, direction in enumerate(_TRANSLATION_AXES):
        axis = transform.updTransformAxis(3 + k)
        axis.setAxis(osim.Vec3(*direction))
        axis.set_function(osim.Constant(0.0))
    custom = osim.CustomJoint(joint.name, parent, location, orientation, child, osim.Vec3(0), osim.Vec3(0),
                              transform)
    for coord, handle in zip(joint.coordinates, _coordinates(custom)):
        handle.setRangeMin(coord.range_rad[0])
        handle.setRangeMax(coord.range_rad[1])
        handle.setDefaultValue(0.0)
        handle.setDefaultClamped(False)
    return custom


def _coordinates(joint: osim.Joint):
    return [joint.upd_coordinates(k) for k in range(joint.numCoordinates())]
