"""The `lumbar-twin` command line.

Expected faults (bad input, infeasible requests) end with one readable line on stderr and exit
code 2; nothing is half-written. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from lumbar_twin import __version__
from lumbar_twin.errors import LumbarTwinError

EXIT_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except LumbarTwinError as exc:  # InputError included
        print(f"lumbar-twin: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("lumbar-twin: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumbar-twin",
        description="Patient-specific lumbar digital twins for OpenSim and MuJoCo.",
    )
    parser.add_argument("--version", action="version", version=f"lumbar-twin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="build a patient's twin (OpenSim + MuJoCo models)",
                                description="Build a patient's twin from a patient file.")
    build.add_argument("patient", help="patient file (.json or .yaml)")
    build.add_argument("--out", required=True, help="output folder (created if missing)")
    build.set_defaults(run=_run_build)

    sim = commands.add_parser(
        "simulate", help="activations and spinal loads for a posture and external loads",
        description="Quasi-static activations and intervertebral loads of a built twin. Global angles "
                    "are spread over L1-L2..L5-S1 by the lumbar rhythm.")
    sim.add_argument("twin", help="twin folder written by `lumbar-twin build`")
    sim.add_argument("--flexion", type=float, default=0.0, metavar="DEG", help="lumbar flexion (+) / extension (-)")
    sim.add_argument("--lateral", type=float, default=0.0, metavar="DEG", help="lateral bending, + to the right")
    sim.add_argument("--rotation", type=float, default=0.0, metavar="DEG", help="axial rotation, + to the left")
    sim.add_argument("--hand-load-kg", type=float, default=0.0, metavar="KG",
                     help="mass held in both hands in front of the chest")
    sim.add_argument("--force", action="append", default=[], metavar="SPEC", type=_force,
                     help="external force: contact=thorax_pad,fx=N,fy=N,fz=N[,mx=,my=,mz=][,frame=ground|body]"
                          " (repeatable; ground frame by default)")
    sim.add_argument("--criterion", choices=("squared", "cubed"), default="squared",
                     help="static optimisation cost: sum of squared (default, fast) or cubed activations")
    sim.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sim.set_defaults(run=_run_simulate)
    return parser


def _run_build(args: argparse.Namespace) -> int:
    import opensim

    from twin.build import build_twin  # heavy imports (OpenSim, MuJoCo) only when needed

    opensim.Logger.setLevelString("warn")  # keep OpenSim's info lines off the user's screen

    start = time.perf_counter()
    twin = build_twin(args.patient, args.out)
    spec = twin.spec
    n_bodies, n_coords, n_fascicles = len(spec.bodies), len(spec.coordinates), len(spec.fascicles)
    print(f"built twin {twin.patient.id}: {n_bodies} bodies, {n_coords} coordinates, "
          f"{n_fascicles} fascicles in {time.perf_counter() - start:.1f} s")
    for name, path in twin.files.items():
        print(f"  {path}")
    return 0


def _force(text: str):
    """'contact=thorax_pad,fx=10,fy=0,fz=0' -> ExternalLoad (argparse type)."""
    from twin.statics import ExternalLoad

    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"contact", "fx", "fy", "fz", "mx", "my", "mz", "frame"}
    if unknown or "contact" not in fields:
        raise argparse.ArgumentTypeError(f"unknown keys {sorted(unknown)}" if unknown else "contact= is required")
    try:
        force = tuple(float(fields.get(k, 0.0)) for k in ("fx", "fy", "fz"))
        moment = tuple(float(fields.get(k, 0.0)) for k in ("mx", "my", "mz"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    frame = fields.get("frame", "ground")
    if frame not in ("ground", "body"):
        raise argparse.ArgumentTypeError(f"frame must be ground or body, got {frame!r}")
    return ExternalLoad(fields["contact"], force, moment, frame)


def _run_simulate(args: argparse.Namespace) -> int:
    import json

    from twin.simulate import load_twin, simulate
    from twin.statics import Statics

    twin = load_twin(args.twin)
    statics = Statics(twin.spec, twin.activation_caps, exponent=3 if args.criterion == "cubed" else 2)
    result = simulate(twin, args.flexion, args.lateral, args.rotation, args.hand_load_kg, args.force, statics)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"posture: flexion {args.flexion:g} deg, lateral {args.lateral:g} deg, rotation {args.rotation:g} deg"
          + (f"; {args.hand_load_kg:g} kg in the hands" if args.hand_load_kg else ""))
    print(f"\n{'level':7s} {'compression N':>14s} {'AP shear N':>11s} {'lat shear N':>12s}")
    for level, load in result.levels.items():
        print(f"{level:7s} {load.compression_N:14.0f} {load.ap_shear_N:11.0f} {load.lat_shear_N:12.0f}")
    print(f"\n{'group':20s} {'left':>6s} {'right':>6s}   (force-weighted activation, 0..1)")
    for group, sides in result.groups.items():
        print(f"{group:20s} {sides['left']:6.3f} {sides['right']:6.3f}")
    share = result.reserve_share
    worst = result.coordinate_names[int(result.reserve_shares.argmax())]
    print(f"\nreserve actuators carry at most {share:.1%} of a net moment ({worst})"
          + ("  ** FLAGGED: the muscles cannot hold this posture and load **" if result.flagged else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
