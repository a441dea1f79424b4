"""One exception family for the whole toolkit.

Library code raises these; only the command line turns them into one line and an exit code.
"""
from __future__ import annotations

from pathlib import Path


class LumbarTwinError(Exception):
    """Base of every error the toolkit raises on purpose."""


class InputError(LumbarTwinError):
    """Bad user input: names the file and, where known, the field."""

    def __init__(self, source: str | Path | None, problem: str, field: str | None = None):
        self.source = str(source) if source is not None else None
        self.field = field
        self.problem = problem
        where = self.source or "input"
        if field:
            where = f"{where}: field '{field}'"
        super().__init__(f"{where}: {problem}")
