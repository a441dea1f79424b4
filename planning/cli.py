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

    seg = commands.add_parser(
        "segment", help="lumbar MRI -> muscle labels and morphometry (CSA, lean CSA, fat fraction)",
        description="Segment psoas, quadratus lumborum, erector spinae and multifidus on Dixon MRI (--water, "
                    "--fat) or a single T1-weighted image (--image), NIfTI or DICOM folders, and measure them "
                    "at every disc level.")
    seg.add_argument("--water", help="Dixon water image (.nii, .nii.gz or DICOM folder)")
    seg.add_argument("--fat", help="Dixon fat image, same grid")
    seg.add_argument("--image", help="single-contrast T1-weighted image (fat bright) instead of --water/--fat; "
                                     "fat fraction from a 3-class Gaussian mixture per muscle (docs/imaging.md)")
    seg.add_argument("--vertebrae", help="vertebra label map on the same grid (without it the discs and vertebral "
                                         "bodies are found on the image, numbered up from the sacrum)")
    seg.add_argument("--vertebra-labels", metavar="CONVENTION",
                     help="'default' (L1..L5 = 1..5, S1 = 6), 'totalsegmentator', or a JSON {\"L1\": value, ...}")
    seg.add_argument("--labels", help="external muscle label map (skips the built-in segmenter)")
    seg.add_argument("--label-map", help="JSON {\"multifidus_left\": value, ..., \"ignore\": [values]}")
    seg.add_argument("--subject", help="pseudonym to record (default: a hash of the pixels)")
    seg.add_argument("--out", required=True, help="output folder")
    seg.set_defaults(run=_run_segment)

    ph = commands.add_parser("phantom", help="synthetic lumbar Dixon MRI with known truth",
                             description="Write a synthetic lumbar Dixon MRI (water, fat, vertebra labels), "
                                         "its true muscle labels and truth.json (morphometry schema).")
    ph.add_argument("--out", required=True, help="output folder")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--noise", type=float, default=0.04, help="Rician sigma relative to full signal (0.02-0.06)")
    ph.add_argument("--variant", choices=("slim", "large", "atrophy"), help="anatomy off the defaults")
    ph.add_argument("--orientation", metavar="CODES", help="stored axis codes, e.g. LPS or RAS (default: by seed)")
    ph.set_defaults(run=_run_phantom)
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


def _run_segment(args: argparse.Namespace) -> int:
    from imaging.pipeline import OUTPUT_FILES, run_segmentation

    start = time.perf_counter()
    result = run_segmentation(args.out, water=args.water, fat=args.fat, image=args.image, vertebrae=args.vertebrae,
                              vertebra_labels=args.vertebra_labels, labels=args.labels, label_map=args.label_map,
                              subject=args.subject)
    levels = result.levels
    print(f"segmented {result.morphometry.subject}: levels {', '.join(levels.found)} "
          f"in {time.perf_counter() - start:.1f} s"
          + ("" if args.vertebrae else " (levels found on the image: " + ", ".join(
              f"{lv} at slice {levels.disc_slice[lv]:.1f}" for lv in levels.found) + ")"))
    if levels.missing:
        print(f"  not in the image: {', '.join(levels.missing)}", file=sys.stderr)
    for name in OUTPUT_FILES:
        print(f"  {result.directory / name}")
    return 0


def _run_phantom(args: argparse.Namespace) -> int:
    from imaging.phantom import make_phantom, write_phantom
    from lumbar_twin.errors import InputError
    from lumbar_twin.fileio import staged_directory

    orientation = None
    if args.orientation:
        codes = tuple(args.orientation.upper())
        axes = sorted(next((i for i, pair in enumerate(("LR", "AP", "SI")) if c in pair), -1) for c in codes)
        if axes != [0, 1, 2]:
            raise InputError(None, f"{args.orientation!r} is not an orientation such as LPS or RAS",
                             field="--orientation")
        orientation = codes
    if not 0.0 <= args.noise <= 0.5:
        raise InputError(None, f"{args.noise} is outside 0..0.5", field="--noise")
    phantom = make_phantom(args.seed, noise=args.noise, orientation=orientation, variant=args.variant)
    with staged_directory(args.out) as stage:
        files = write_phantom(phantom, stage)
    print(f"phantom seed {args.seed} ({''.join(phantom.orientation)}, noise {args.noise:g}, "
          f"shape {phantom.water.shape}) -> {args.out}")
    for path in files.values():
        print(f"  {args.out}/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
