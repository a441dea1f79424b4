"""MuscleMap `mm_segment` (github.com/MuscleMap/MuscleMap, MIT), its whole-body model: lumbar
multifidus, erector spinae, psoas major and quadratus lumborum left/right
(convention `musclemap-wholebody`). No vertebrae: levels come from --vertebrae or the image.
It writes `<image>_dseg.nii.gz` next to its input, so the input is copied into the work folder.
"""
from pathlib import Path

from imaging.external import ExternalOutput, ExternalSegmenter


def _command(program: str, image: Path, work: Path) -> list[str]:
    return [program, "-i", str(image)]


def _output(image: Path, work: Path) -> ExternalOutput:
    stem = image.name.removesuffix(".gz").removesuffix(".nii")
    return ExternalOutput(image.parent / f"{stem}_dseg.nii.gz", "musclemap-wholebody")


SEGMENTER = ExternalSegmenter(
    name="musclemap", executable="mm_segment",
    install="install MuscleMap (github.com/MuscleMap/MuscleMap: clone, then pip install -e .; "
            "see its docs/installation.md), which brings mm_segment and its weights",
    command=_command, output=_output)
