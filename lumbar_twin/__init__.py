"""Shared foundations of lumbar-twin: version, errors, file helpers.

The pipeline itself lives in the packages `imaging`, `twin` and `planning`.
"""
from importlib import metadata as _metadata
from pathlib import Path as _Path

try:
    __version__ = _metadata.version("lumbar-twin")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

#: Root of the source tree; `data/` (template, sample patient, norms) lives here.
REPO_ROOT = _Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
