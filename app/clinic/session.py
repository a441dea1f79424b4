"""One browser tab's state on the server: its current profile and whether it may be exported.

Each tab holds a random session id (a dcc.Store in the page); the server keeps the rest here,
so two tabs on one server never share a profile, a plan run or an export.

Temporary folders (uploads, plan runs) belong to the session that made them. A session keeps
at most three: its current profile's, the compared profile's and a running plan's; every other
one is removed as soon as it is replaced (`Session.prune`), and all of them when the server
stops (`Sessions.close`).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lumbar_twin.errors import LumbarTwinError
from lumbar_twin.fileio import sha256_file
from planning.export import check_profile, read_profile

log = logging.getLogger("lumbar_twin.app")


@dataclass
class Session:
    profile: Path | None = None
    problems: list[str] = field(default_factory=list)  # check_profile's answer for `profile`
    checked: dict[str, str] = field(default_factory=dict)  # {file: sha256} of the profile as checked
    job: object | None = None  # the running or last PlanJob
    compare: Path | None = None  # an earlier profile, for side-by-side comparison
    folders: list[Path] = field(default_factory=list)  # temporary folders this session made
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def new_folder(self, prefix: str) -> Path:
        with self.lock:
            folder = Path(tempfile.mkdtemp(prefix=prefix))
            self.folders.append(folder)
            return folder

    def prune(self) -> None:
        """Remove every folder this session made that holds neither its profile, the compared
        profile nor a running plan."""
        with self.lock:
            running = self.job is not None and self.job.state == "running"
            keep = [p for p in (self.profile, self.compare, self.job.folder if running else None) if p is not None]
            for folder in list(self.folders):
                if not any(p == folder or folder in p.parents for p in keep):
                    shutil.rmtree(folder, ignore_errors=True)
                    self.folders.remove(folder)

    def close(self) -> None:
        """Stop a running plan and remove every folder (the server is stopping)."""
        with self.lock:
            if self.job is not None:
                self.job.cancel()
            for folder in self.folders:
                shutil.rmtree(folder, ignore_errors=True)
            self.folders.clear()


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

    def folders(self) -> list[Path]:
        """Every temporary folder the sessions hold now."""
        with self._lock:
            return [f for s in self._sessions.values() for f in s.folders]

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.close()


def load_profile(session: Session, path: Path, twin) -> str:
    """Make `path` the session's profile; returns a message for the page (problems named).

    twin: the page's LoadedTwin. The profile is checked as `lumbar-twin check --twin` does
    (the files, this twin's identity and model files, MuJoCo at every sample: about 2 s). A
    profile made for another twin, or failing that check, still loads for what-if, but is
    marked unexportable. One that cannot be read (not a profile, checksum failing) is refused
    and the session keeps its current profile.
    """
    try:
        doc, _, _ = read_profile(path)
        problems = check_profile(path, twin=twin)
        checked = profile_files_sha256(path)
    except LumbarTwinError as exc:
        log.warning("profile refused: %s", exc)
        return f"profile refused: {exc}"
    with session.lock:
        if session.profile is not None and session.profile != path:
            session.compare = session.profile
        session.profile, session.problems, session.checked = path, problems, checked
    for p in problems:
        log.warning("%s: %s", path, p)
    return f"loaded {path.name}" + ("" if not problems else f" - not exportable: {problems[0]}")


def profile_files_sha256(path: Path) -> dict[str, str]:
    """sha256 of profile.json and the files it names (CSV, ROS 2 yaml), as they are now."""
    doc, _, _ = read_profile(path)
    names = [path.name, doc["csv"]] + ([doc["ros2"]["file"]] if isinstance(doc.get("ros2"), dict) else [])
    return {name: sha256_file(path.parent / name) for name in names if (path.parent / name).is_file()}


def export_refusal(session: Session, forces_changed: bool, overlay_changed: bool) -> str | None:
    """Why the session's profile may not be exported now, or None when it may.

    forces_changed: what-if's scale, speed, shape or timing differ from the profile's own;
    overlay_changed: its exercise, targets or limits do."""
    if session.profile is None:
        return "no profile yet: plan one or load a profile.json"
    if session.problems:
        return "the profile did not pass verification: " + "; ".join(session.problems)
    if forces_changed or overlay_changed:
        return ("the profile shown is changed by what-if (scale, speed, shape, timing, exercise, targets or limits) "
                "and was not verified as changed: plan it to export it")
    return None
