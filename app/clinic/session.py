"""One browser tab's state on the server: its current profile and whether it may be exported.

Each tab holds a random session id (a dcc.Store in the page); the server keeps the rest here,
so two tabs on one server never share a profile, a plan run or an export.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from planning.export import check_profile, read_profile
from lumbar_twin.errors import LumbarTwinError

log = logging.getLogger("lumbar_twin.app")


@dataclass
class Session:
    profile: Path | None = None
    problems: list[str] = field(default_factory=list)  # check_profile's answer for `profile`
    job: object | None = None  # the running or last PlanJob
    compare: Path | None = None  # an earlier profile, for side-by-side comparison


class Sessions:
    """Thread-safe map session id -> Session."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def get(self, sid: str) -> Session:
        with self._lock:
            return self._sessions.setdefault(sid, Session())


def load_profile(session: Session, path: Path, twin_sha256: str) -> str:
    """Make `path` the session's profile; returns a message for the page (problems named).

    A profile made for another twin, or failing `lumbar-twin check` (checksum, limits, missing
    verification), still loads for what-if, but is marked unexportable.
    """
    try:
        doc, _, _ = read_profile(path)
    except LumbarTwinError as exc:
        log.warning("profile refused: %s", exc)
        return f"profile refused: {exc}"
    problems = check_profile(path)
    recorded = (doc.get("provenance") or {}).get("twin_sha256")
    if recorded != twin_sha256:
        problems = [f"made for another twin (twin_sha256 {str(recorded)[:12]}..., this twin {twin_sha256[:12]}...)"] + problems
    if session.profile is not None and session.profile != path:
        session.compare = session.profile
    session.profile, session.problems = path, problems
    for p in problems:
        log.warning("%s: %s", path, p)
    return f"loaded {path.name}" + ("" if not problems else f" - not exportable: {problems[0]}")


def export_refusal(session: Session, scale: float, overlay_changed: bool) -> str | None:
    """Why the session's profile may not be exported now, or None when it may."""
    if session.profile is None:
        return "no profile yet: plan one or load a profile.json"
    if session.problems:
        return "the profile did not pass verification: " + "; ".join(session.problems)
    if scale != 1.0 or overlay_changed:
        return ("the profile shown is changed by what-if (scale, exercise, targets or limits) and was not "
                "verified as changed: plan it to export it")
    return None
