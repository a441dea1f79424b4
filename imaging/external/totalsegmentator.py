"""TotalSegmentator (Wasserthal et al. 2023, Radiol Artif Intell 5:e230024; MR: Akinci
D'Antonoli et al. 2025, Radiology 314:e241613), task `total_mr`: autochthon and iliopsoas left/right (merged classes, kept merged),
all vertebrae in one value with the discs and the sacrum, numbered from the sacrum or from
--lowest-disc. `pip install TotalSegmentator` (Apache-2.0); its weights download on first use.
"""
from pathlib import Path

from imaging.external import ExternalOutput, ExternalSegmenter


def _command(program: str, image: Path, work: Path) -> list[str]:
    return [program, "-i", str(image), "-o", str(work / "total_mr.nii.gz"), "--ml", "--task", "total_mr"]


def _output(image: Path, work: Path) -> ExternalOutput:
    path = work / "total_mr.nii.gz"
    return ExternalOutput(path, "totalsegmentator-total-mr", path, "totalsegmentator-total-mr")


SEGMENTER = ExternalSegmenter(
    name="totalsegmentator", executable="TotalSegmentator",
    install="pip install 'lumbar-twin[totalsegmentator]' (TotalSegmentator and PyTorch; weights download on first use)",
    command=_command, output=_output)
