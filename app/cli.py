"""The `lumbar-twin` command line.

Expected faults (bad input, infeasible requests) end with one readable line on stderr and exit
code 2; nothing is half-written. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence

from lumbar_twin import __version__
from lumbar_twin.errors import InputError, LumbarTwinError
from lumbar_twin.fileio import check_output_folder

EXIT_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "out", None) and args.command != "whatif":  # whatif's --out is a picture
            check_output_folder(args.out)  # before the work, not after it
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
    build.add_argument("--accept-qc-fail", action="store_true",
                       help="use morphometry rows whose imaging QC failed (they are marked in twin.json and reports)")
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
    seg.add_argument("--image-contrast", choices=("t1", "t2", "pd"), default="t1",
                     help="what --image is: t1 (default), or an axial T2-weighted / proton-density stack, whose "
                          "muscles come from --labels or --segmenter and levels from --vertebrae; its fat fraction "
                          "is approximate and its rows are marked (docs/imaging.md)")
    seg.add_argument("--vertebrae", help="vertebra label map on the same grid (without it the discs and vertebral "
                                         "bodies are found on the image, numbered up from the sacrum)")
    seg.add_argument("--vertebra-labels", metavar="CONVENTION",
                     help="'default' (L1..L5 = 1..5, S1 = 6), 'totalsegmentator' (CT total), "
                          "'totalsegmentator-vertebrae-mr', 'totalsegmentator-total-mr' (all vertebrae in one value), "
                          "'spineps', or a JSON {\"L1\": value, ...} (data/label_conventions.yaml)")
    seg.add_argument("--lowest-disc", metavar="LEVEL",
                     help="the lowest disc in view (e.g. L4-L5) when the sacrum is not: numbers the discs found on "
                          "the image or in a map with all vertebrae in one value; checked against per-vertebra labels")
    seg.add_argument("--method", choices=("anatomical", "watershed"), default="anatomical",
                     help="built-in segmenter: 'anatomical' (default: compartments of real anatomy, measured on a "
                          "real Dixon scan and two phantom families) or 'watershed' (the earlier method: right on "
                          "its own phantom only); docs/imaging.md")
    seg.add_argument("--accept-implausible", action="store_true",
                     help="write a result that fails the plausibility checks (areas far outside the healthy range, "
                          "sides more than 3 x apart, a muscle on the skin) with its warnings, instead of stopping")
    seg.add_argument("--labels", help="external muscle label map (skips the built-in segmenter)")
    seg.add_argument("--segmenter", default="builtin", metavar="NAME",
                     help="'builtin' (default: --method), or run an installed external tool and import its labels: "
                          "'totalsegmentator' (task total_mr) or 'musclemap' (mm_segment, whole-body model)")
    seg.add_argument("--label-map", metavar="CONVENTION",
                     help="the label map's convention: 'musclemap-wholebody', 'musclemap-abdomen', "
                          "'totalsegmentator-total-mr', 'totalsegmentator-total', 'toolkit', or a JSON "
                          "{\"multifidus_left\": value, ..., \"ignore\": [values]} (data/label_conventions.yaml)")
    seg.add_argument("--subject", help="pseudonym to record (default: a hash of the pixels)")
    seg.add_argument("--out", required=True, help="output folder")
    seg.set_defaults(run=_run_segment)

    pl = commands.add_parser(
        "plan", help="optimise a robot force profile for an exercise, verify it, export it",
        description="Search the force profile at a pad that brings muscle groups to target activations while "
                    "spinal loads and activations stay under their limits (optuna), verify it in the other engine "
                    "at the device rate, and write the device files, the history, pictures and a report.")
    pl.add_argument("twin", help="twin folder written by `lumbar-twin build`")
    pl.add_argument("--plan", metavar="PLAN.yaml", help="plan file (YAML or JSON); the options below override it")
    pl.add_argument("--exercise", help="exercise from data/exercises.yaml, e.g. trunk_extension")
    pl.add_argument("--contact", help="pad the robot pushes on (default thorax_pad)")
    pl.add_argument("--targets", metavar="LIST", help="group=activation[,group.side=activation], e.g. multifidus=0.30")
    pl.add_argument("--limits", metavar="LIST",
                    help="compression_N=N,ap_shear_N=N[,L5-S1.compression_N=N][,group=cap] (default: patient file, "
                         "then NIOSH 3400 N and 1000 N shear)")
    pl.add_argument("--device", metavar="LIST", help="max_force_N=,max_rate_N_per_s=,cone_deg=,rate_hz=")
    pl.add_argument("--trials", type=int, help="trials in the study (default 200)")
    pl.add_argument("--seed", type=int, help="sampler seed (default 0): the same seed repeats a plan")
    pl.add_argument("--knots", type=int, help="force magnitude knots per cycle (default 5)")
    pl.add_argument("--mode", choices=("single", "pareto"), help="pareto: target error against peak compression")
    pl.add_argument("--sampler", choices=("tpe", "nsga2", "random"))
    pl.add_argument("--engine", choices=("mujoco", "opensim"), default="mujoco",
                    help="engine of the search; the other one verifies (default mujoco)")
    pl.add_argument("--storage", metavar="URL",
                    help="optuna storage shared by workers and resumable: a journal file path, sqlite:///F.db, "
                         "postgresql://user:pass@host/db (default: in memory)")
    pl.add_argument("--study", metavar="NAME", help="study name in the storage (default: from the plan's hash)")
    pl.add_argument("--uncertainty", choices=("morphometry", "none"),
                    help="morphometry (default): every limit holds for the weakest and strongest plausible patient "
                         "given the morphometry's measurement band, in the search and both verifications; none: the "
                         "point estimate only, for research comparisons (written into profile.json; `check` refuses "
                         "such a profile for a device)")
    pl.add_argument("--format", choices=("csv", "ros2"), default="csv",
                    help="ros2 also writes profile.ros2.yaml (trajectory_msgs/JointTrajectory)")
    pl.add_argument("--out", required=True, help="output folder")
    pl.set_defaults(run=_run_plan)

    ck = commands.add_parser("check", help="check an exported profile before it goes to a device",
                             description="Re-read profile.json and its CSV; exit 1 if the checksum, a non-finite "
                                         "value, the rate, the device limits, either recorded verification or the "
                                         "worst case over the measurement band do not hold, or the profile was "
                                         "planned with --uncertainty none.")
    ck.add_argument("profile", help="profile.json")
    ck.add_argument("--twin", help="the patient's twin folder: the profile must be this twin's (twin.json and "
                                   "model.osim unchanged since the plan), and MuJoCo's statics at every device sample, "
                                   "for the plausible patients too, must keep every recorded limit")
    ck.set_defaults(run=_run_check)

    wi = commands.add_parser("whatif", help="predict activations and loads of a profile, perhaps changed, in a second",
                             description="Play an exported profile (scaled, on another exercise, against other "
                                         "targets or limits) through the twin and compare with targets and limits.")
    wi.add_argument("twin", help="twin folder")
    wi.add_argument("--profile", required=True, help="profile.json written by `lumbar-twin plan`")
    wi.add_argument("--exercise", help="exercise (default: the profile's own)")
    wi.add_argument("--scale", type=float, default=1.0, help="multiply the force by this (default 1)")
    wi.add_argument("--speed", type=float, default=1.0,
                    help="exercise speed, 0.5..2: the cycle (motion and force) lasts cycle_s / speed (default 1)")
    wi.add_argument("--shape", type=float, default=1.0,
                    help="peak shape, 0.25..4: >1 concentrates the force around its peak, <1 spreads it over "
                         "the cycle, the peak force kept (default 1)")
    wi.add_argument("--shift", type=float, default=0.0, metavar="PCT",
                    help="move the force later in the cycle by PCT %% of the cycle, -50..50 (default 0)")
    wi.add_argument("--targets", metavar="LIST", help="targets instead of the profile's, as for plan")
    wi.add_argument("--limits", metavar="LIST", help="limits instead of the profile's, as for plan")
    wi.add_argument("--out", default="whatif.png", help="picture to write (default whatif.png)")
    wi.set_defaults(run=_run_whatif)

    sv = commands.add_parser("serve", help="the clinic page: what-if, plan and export in a browser, on 127.0.0.1",
                             description="Serve the clinic page for a twin on http://127.0.0.1:PORT/ (Ctrl-C stops it).")
    sv.add_argument("twin", help="twin folder, or a patient file (built into a temporary twin)")
    sv.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    sv.set_defaults(run=_run_serve)

    demo = commands.add_parser(
        "demo", help="the whole pipeline on a synthetic patient, with a report",
        description="Phantom MRI -> segmentation -> patient twin -> plan -> verification -> device files, "
                    "each stage printed with its figures, everything under --out with an index.html report.")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--seed", type=int, default=1, help="phantom seed (default 1)")
    demo.add_argument("--exercise", default="trunk_extension")
    demo.add_argument("--targets", default="multifidus=0.25", metavar="LIST")
    demo.add_argument("--trials", type=int, default=200)
    demo.set_defaults(run=_run_demo)

    batch = commands.add_parser(
        "batch", help="patients x exercises x targets from a manifest, in parallel and resumable",
        description="Run every row of a manifest (patient file, morphometry + anthropometry, or Dixon images; an "
                    "exercise, targets and limits) to a verified device profile in DIR/items/<id>/, in parallel; "
                    "finished items are kept on a rerun; DIR/summary.csv and summary.png at the end.")
    batch.add_argument("manifest", help="manifest CSV (see data/sample/manifest.csv)")
    batch.add_argument("--out", required=True, help="batch folder")
    batch.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    batch.add_argument("--storage", metavar="URL", help="optuna storage shared by the items' studies (as for plan)")
    batch.add_argument("--dask", metavar="ADDRESS", help="run the items on this Dask scheduler instead")
    batch.set_defaults(run=_run_batch)

    ph = commands.add_parser("phantom", help="synthetic lumbar Dixon MRI with known truth",
                             description="Write a synthetic lumbar Dixon MRI (water, fat, vertebra labels), "
                                         "its true muscle labels and truth.json (morphometry schema).")
    ph.add_argument("--out", required=True, help="output folder")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--noise", type=float, help="Rician sigma relative to full signal (0.02-0.06; default 0.04, "
                                                 "drawn from the seed for --family anatomic)")
    ph.add_argument("--variant", choices=("slim", "large", "atrophy"), help="anatomy off the defaults")
    ph.add_argument("--orientation", metavar="CODES", help="stored axis codes, e.g. LPS or RAS (default: by seed)")
    ph.add_argument("--family", choices=("default", "anatomic"), default="default",
                    help="'anatomic': the family written from anatomy references independently of the segmenters "
                         "(imaging/anatomic_phantom.py; habitus, voxel size and noise drawn from the seed)")
    ph.set_defaults(run=_run_phantom)
    return parser


def _run_build(args: argparse.Namespace) -> int:
    import opensim

    from twin.build import build_twin  # heavy imports (OpenSim, MuJoCo) only when needed

    opensim.Logger.setLevelString("warn")  # keep OpenSim's info lines off the user's screen

    start = time.perf_counter()
    twin = build_twin(args.patient, args.out, accept_qc_fail=args.accept_qc_fail)
    spec = twin.spec
    n_bodies, n_coords, n_fascicles = len(spec.bodies), len(spec.coordinates), len(spec.fascicles)
    print(f"built twin {twin.patient.id}: {n_bodies} bodies, {n_coords} coordinates, "
          f"{n_fascicles} fascicles in {time.perf_counter() - start:.1f} s")
    if twin.morphometry_use:
        counts = {use: sum(u.use == use for u in twin.morphometry_use) for use in
                  ("measured", "estimated", "accepted_qc_fail", "template")}
        print("  morphometry rows (muscle x side x level): " + ", ".join(f"{n} {use.replace('_', ' ')}"
                                                                          for use, n in counts.items() if n))
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
    if not all(math.isfinite(v) for v in force + moment):
        raise argparse.ArgumentTypeError("forces and moments must be finite numbers")
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
    if result.flagged:  # the headline is the shortfall in N m, not the largest share of a small moment
        print(f"\n** FLAGGED: the muscles cannot hold this posture and load. {result.shortfall.headline} **")
    share = result.reserve_share
    worst = result.coordinate_names[int(result.reserve_shares.argmax())]
    print(f"{'' if result.flagged else chr(10)}reserve actuators carry at most {share:.1%} of a net moment ({worst})")
    return 0


def _run_segment(args: argparse.Namespace) -> int:
    from imaging.pipeline import OUTPUT_FILES, run_segmentation

    start = time.perf_counter()
    result = run_segmentation(args.out, water=args.water, fat=args.fat, image=args.image, vertebrae=args.vertebrae,
                              vertebra_labels=args.vertebra_labels, labels=args.labels, label_map=args.label_map,
                              subject=args.subject, method=args.method,
                              accept_implausible=args.accept_implausible, lowest_disc=args.lowest_disc,
                              segmenter=args.segmenter, image_contrast=args.image_contrast)
    levels = result.levels
    print(f"segmented {result.morphometry.subject}: levels {', '.join(levels.found)} "
          f"in {time.perf_counter() - start:.1f} s"
          + ("" if args.vertebrae else " (levels found on the image: " + ", ".join(
              f"{lv} at slice {levels.disc_slice[lv]:.1f}" for lv in levels.found) + ")"))
    outside = [level for level in levels.missing if level not in levels.at_edge]
    if outside:
        print(f"  not in the image: {', '.join(outside)}", file=sys.stderr)
    if levels.at_edge:
        print(f"  on the volume's first or last slices, not measured: {', '.join(levels.at_edge)}", file=sys.stderr)
    for line in result.morphometry.provenance["not_measured"]:
        print(f"  not measured (the twin takes the template): {line}", file=sys.stderr)
    for line in result.morphometry.provenance["warnings"]:
        print(f"  check qc.png: {line}", file=sys.stderr)
    for name in OUTPUT_FILES:
        print(f"  {result.directory / name}")
    return 0


def _plan_document(args: argparse.Namespace) -> dict:
    from planning.plan import command_line_overlay, merge, read_plan_file

    document = read_plan_file(args.plan) if args.plan else {}
    overlay = command_line_overlay(args.targets, args.limits, args.device)
    for key in ("exercise", "contact", "uncertainty"):
        if getattr(args, key, None):
            overlay[key] = getattr(args, key)
    search = {k: getattr(args, k) for k in ("trials", "seed", "knots", "mode", "sampler") if getattr(args, k) is not None}
    if search:
        overlay["search"] = search
    return merge(document, overlay)


def _run_plan(args: argparse.Namespace) -> int:
    import opensim

    from planning.plan import resolve_plan
    from planning.planner import make_plan
    from planning.report import write_plan
    from twin.simulate import load_twin

    opensim.Logger.setLevelString("warn")
    twin = load_twin(args.twin)
    plan = resolve_plan(twin.spec, _plan_document(args), twin.patient.get("limits"), source=args.plan)
    targets = ", ".join(f"{t.label}={t.value:g}" for t in plan.targets)
    print(f"plan {twin.patient.get('id', args.twin)} {plan.exercise} at {plan.contact}: targets {targets}; limits "
          f"compression {min(plan.limits.compression_N.values()):.0f} N, AP shear {min(plan.limits.ap_shear_N.values()):.0f} N"
          + "".join(f", {g} {c:g}" for g, c in plan.limits.activation.items()))
    result = make_plan(twin, plan, engine=args.engine, storage=args.storage, study=args.study,
                       progress=sys.stderr.isatty())
    search, v = result.search, result.verification
    t = result.timings_s
    rate = f" ({search.trials_run / t['search_s']:.0f} trials/s)" if search.trials_run else ""
    print(f"searched {search.trials_run} trials in {t['search_s']:.1f} s{rate}; study {search.study_name} holds "
          f"{len(search.candidates)}, {len(search.feasible)} feasible; best target error "
          f"{result.chosen.error:.4f} (trial {result.chosen.number})")
    print(f"verified in {v.engine} at {plan.device.rate_hz:g} Hz ({len(result.times_s)} samples) in "
          f"{t['verify_s'] - t.get('opensim_s', 0.0):.1f} s: "
          f"{'passed' if v.passed else 'FAILED'} (model consistency); engines differ by at most "
          f"{v.max_engine_difference['compression_N']:.2g} N compression, {v.max_engine_difference['activation']:.2g} activation")
    ind = result.independent
    print(f"verified by OpenSim's StaticOptimization + JointReaction on model.osim ({len(ind.frames)} samples) in "
          f"{ind.seconds:.1f} s: {'passed' if ind.passed else 'FAILED'}; compression within "
          f"{ind.max_difference['compression_relative']:.2%}, targeted activation within "
          f"{ind.max_difference['targeted_activation']:.2g}")
    if plan.uncertainty == "morphometry":
        worst = result.worst_case_peak()
        level = max(worst["compression_N"], key=lambda lv: worst["compression_N"][lv] / plan.limits.compression_N[lv])
        print(f"held for the weakest and strongest plausible patient too (morphometry band; OpenSim "
              + ", ".join(f"{label} {'passed' if o.passed else 'FAILED'}" for label, o in result.independent_band.items())
              + f"); worst-case peak compression {worst['compression_N'][level]:.0f} N at {level}")
    else:
        print("measurement uncertainty not carried (--uncertainty none): research comparison, not for a device")
    _print_prediction(result.mean_activation(), v.peak, plan)
    files = write_plan(result, args.out, (args.format,))
    print(f"wrote {args.out}/: " + ", ".join(p.name for p in files.values()))
    return 0


def _print_prediction(mean_activation: dict, peaks: dict, plan) -> None:
    """Each target's mean activation per side, and the peak load nearest its limit."""
    from planning.report import target_table

    for label, value, left, right, ok in target_table(mean_activation, plan.targets):
        print(f"  {label:24s} target {value:.3f}  left {left:.3f}  right {right:.3f}  "
              f"{'on target' if ok else 'off target'}")
    for kind, label in (("compression_N", "compression"), ("ap_shear_N", "AP shear")):
        caps = getattr(plan.limits, kind)
        level = max(peaks[kind], key=lambda lv: peaks[kind][lv] / caps[lv])
        print(f"  peak {label} {peaks[kind][level]:.0f} N at {level} (limit {caps[level]:.0f} N, "
              f"{peaks[kind][level] / caps[level]:.0%})")


def _run_check(args: argparse.Namespace) -> int:
    from planning.export import check_profile

    twin = None
    if args.twin:
        from twin.simulate import load_twin

        twin = load_twin(args.twin)
    problems = check_profile(args.profile, twin)
    if problems:
        for problem in problems:
            print(f"{args.profile}: {problem}", file=sys.stderr)
        print(f"lumbar-twin: {args.profile} must not go to a device ({len(problems)} problems)", file=sys.stderr)
        return 1
    print(f"{args.profile}: OK (checksum, the samples of the verified parameters, finite values, rate, device limits, "
          f"both recorded verifications and the worst case over the measurement band hold"
          + (f"; this twin's, and MuJoCo at every sample keeps every limit)" if twin else ")"))
    return 0


def _run_whatif(args: argparse.Namespace) -> int:
    from lumbar_twin.fileio import sha256_file
    from planning.figures import cycle_figure
    from planning.plan import command_line_overlay
    from planning.whatif import what_if
    from twin.simulate import load_twin

    start = time.perf_counter()
    twin = load_twin(args.twin)
    w = what_if(twin, args.profile, args.exercise, args.scale, command_line_overlay(args.targets, args.limits),
                speed=args.speed, shape=args.shape, shift_pct=args.shift)
    print(f"what if: {args.profile} x {args.scale:g} on {w.plan.exercise} at speed {args.speed:g} "
          f"({w.exercise.cycle_s:g} s a cycle, {len(w.times_s)} samples), shape {args.shape:g}, "
          f"shifted {args.shift:+g} % of the cycle")
    if _planned_for(args.profile) != sha256_file(twin.directory / "twin.json"):  # a fair question, but say so
        print(f"  NOTE: {args.profile} was planned for another twin (or twin.json changed since): this predicts "
              "it on this one; it was not verified here")
    _print_prediction(w.mean_activation, w.evaluation.peaks(), w.plan)
    for problem in w.device_problems:
        print(f"  DEVICE: {problem}")
    for breach in w.breaches:
        print(f"  LIMIT: {breach}")
    if not (w.device_problems or w.breaches):
        print("  within every limit")
    cycle_figure(w.evaluation, w.forces_N, w.plan, args.out,
                 title=f"what if: {w.plan.exercise}, profile x {args.scale:g}, speed {args.speed:g}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _planned_for(profile) -> str | None:
    """provenance.twin_sha256 of a profile (read_profile has checked it is one)."""
    from lumbar_twin.fileio import read_json

    provenance = read_json(profile).get("provenance")
    return provenance.get("twin_sha256") if isinstance(provenance, dict) else None


def _run_demo(args: argparse.Namespace) -> int:
    import opensim

    from app.demo import run_demo
    from planning.plan import command_line_overlay

    opensim.Logger.setLevelString("warn")
    start = time.perf_counter()
    run_demo(args.out, seed=args.seed, exercise=args.exercise, targets=command_line_overlay(args.targets)["targets"],
             trials=args.trials)
    print(f"demo done in {time.perf_counter() - start:.0f} s")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from app.clinic.server import serve

    logging.getLogger("lumbar_twin.app").setLevel(logging.INFO)
    return serve(args.twin, args.port)


def _run_batch(args: argparse.Namespace) -> int:
    from app.batch import run_batch

    if args.workers < 1:
        raise LumbarTwinError(f"--workers must be at least 1, not {args.workers}")
    rows = run_batch(args.manifest, args.out, workers=args.workers, storage=args.storage, dask_address=args.dask)
    return 0 if all(r["status"].startswith("done") for r in rows) else 1


def _run_phantom(args: argparse.Namespace) -> int:
    from imaging.anatomic_phantom import make_anatomic_phantom, write_anatomic_phantom
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
    if args.noise is not None and not 0.0 <= args.noise <= 0.5:
        raise InputError(None, f"{args.noise} is outside 0..0.5", field="--noise")
    if args.family == "anatomic":
        if args.variant or args.orientation:
            raise InputError(None, "the anatomic family draws its habitus and orientation from the seed",
                             field="--variant" if args.variant else "--orientation")
        phantom, write = make_anatomic_phantom(args.seed, noise=args.noise), write_anatomic_phantom
        summary = (f"anatomic phantom seed {args.seed} ({phantom.params['habitus']}, voxel "
                   f"{' x '.join(f'{v:.2f}' for v in phantom.params['voxel_mm'])} mm")
    else:
        noise = 0.04 if args.noise is None else args.noise
        phantom, write = make_phantom(args.seed, noise=noise, orientation=orientation, variant=args.variant), \
            write_phantom
        summary = f"phantom seed {args.seed} ({''.join(phantom.orientation)}, noise {noise:g}"
    with staged_directory(args.out) as stage:
        files = write(phantom, stage)
    print(f"{summary}, shape {phantom.water.shape}) -> {args.out}")
    for path in files.values():
        print(f"  {args.out}/{path.name}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
