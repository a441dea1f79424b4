"""External segmenters behind one narrow interface: an image in, a label map and its
convention out (and, where the tool draws them, vertebrae).

Each tool is one module of this package that defines `SEGMENTER`; adding a tool touches only
its module. The tools are optional (pyproject extras) and run as their own command-line
programs in a temporary folder; their output is imported like any external label map
(imaging.pipeline.import_labels, checked by imaging.label_checks).
"""
from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lumbar_twin.errors import InputError


@dataclass(frozen=True)
class ExternalOutput:
    labels: Path
    convention: str  # muscle convention (data/label_conventions.yaml)
    vertebrae: Path | None = None
    vertebra_convention: str | None = None


@dataclass(frozen=True)
class ExternalSegmenter:
    name: str
    #: The program on PATH.
    executable: str
    #: One line telling a user how to install it.
    install: str
    #: (program path, input image, work folder) -> the command line to run.
    command: Callable[[str, Path, Path], list[str]]
    #: (input image, work folder) -> what the tool wrote.
    output: Callable[[Path, Path], ExternalOutput]


def segmenters() -> dict[str, ExternalSegmenter]:
    """Every tool module of this package, by name."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        segmenter = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SEGMENTER", None)
        if segmenter is not None:
            found[segmenter.name] = segmenter
    return found


def run_external(name: str, image: Path, work: Path) -> ExternalOutput:
    """Run the tool `name` on the NIfTI `image` inside `work`; InputError (one line) when it is
    not installed or fails."""
    tools = segmenters()
    if name not in tools:
        raise InputError(None, f"unknown segmenter {name!r}; expected builtin or one of {', '.join(tools)}",
                         field="--segmenter")
    tool = tools[name]
    program = shutil.which(tool.executable)
    if program is None:
        raise InputError(None, f"{tool.executable} is not installed (not on PATH): {tool.install}", field="--segmenter")
    run = subprocess.run(tool.command(program, image, work), cwd=work, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip() or run.stdout.strip() or "no message").splitlines()[-1]
        raise InputError(image, f"{tool.executable} failed (exit {run.returncode}): {last}")
    output = tool.output(image, work)
    if not output.labels.exists():
        raise InputError(image, f"{tool.executable} ran but wrote no label map ({output.labels.name} is missing)")
    return output


def work_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="lumbar-twin-external-")
