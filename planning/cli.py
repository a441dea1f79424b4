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


if __name__ == "__main__":
    sys.exit(main())
