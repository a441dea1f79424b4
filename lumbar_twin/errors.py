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
        if self.source is None:  # a command-line value or a Python argument
            where = field or "input"
        elif field:
            where = f"{self.source}: field '{field}'"
        else:
            where = self.source
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # picklable across worker processes (batch, benchmarks)
        return type(self), (self.source, self.problem, self.field)
