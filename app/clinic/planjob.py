"""A plan run from the page: `lumbar-twin plan` in a child process, so the page stays answerable
and Cancel can stop it at once; progress is the trial count read from its optuna storage.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import optuna

log = logging.getLogger("lumbar_twin.app")


class PlanJob:
    """One `lumbar-twin plan` run into its own folder (`out`), with a SQLite optuna storage.

    `folder`: an empty temporary folder the caller owns and removes (app.clinic.session)."""

    def __init__(self, folder: Path, twin_dir: Path, trials: int, exercise: str, targets: str, limits: str = ""):
        self.folder = Path(folder)
        self.out = self.folder / "plan"
        self.trials = trials
        self.storage = f"sqlite:///{self.folder / 'study.db'}"
        command = [sys.executable, "-m", "app.cli", "plan", str(twin_dir), "--exercise", exercise,
                   "--trials", str(trials), "--storage", self.storage, "--study", "clinic", "--out", str(self.out)]
        if targets:
            command += ["--targets", targets]
        if limits:
            command += ["--limits", limits]
        self.log_path = self.folder / "plan.log"
        self._log = open(self.log_path, "w")
        log.info("plan: %s", " ".join(command))
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self.cancelled = False
        self.result: str | None = None  # the page's message once the profile is loaded (finish)
        self._finishing = threading.Lock()

    def trials_done(self) -> int:
        try:
            study = optuna.load_study(study_name="clinic", storage=self.storage)
            return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
        except Exception:  # the child has not created the study yet
            return 0

    @property
    def state(self) -> str:
        """running, cancelled, done or failed."""
        code = self.process.poll()
        if code is None:
            return "running"
        self._log.close()
        if self.cancelled:
            return "cancelled"
        return "done" if code == 0 and (self.out / "profile.json").is_file() else "failed"

    def finish(self, load) -> str | None:
        """The message of `load()` (loading the finished plan's profile: seconds), run once.

        The page polls every 500 ms and a poll that takes longer is superseded by the next, so
        a poll that finds another one loading returns None at once instead of loading again
        (with every poll loading, no answer ever reached the page on a slow machine)."""
        if self.result is not None or not self._finishing.acquire(blocking=False):
            return self.result
        try:
            if self.result is None:
                self.result = load()
        finally:
            self._finishing.release()
        return self.result

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.cancelled = True
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.info("plan cancelled")
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    @property
    def profile(self) -> Path:
        return self.out / "profile.json"
