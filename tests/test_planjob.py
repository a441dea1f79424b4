"""The clinic page's plan job: a finished plan's profile is loaded once, however many polls ask
(Dash supersedes a poll that outlasts the 500 ms interval, so polls that each loaded again
never answered the page on a slow machine)."""
import threading
import time

import pytest

pytest.importorskip("dash")
from app.clinic.planjob import PlanJob  # noqa: E402


def test_a_finished_plan_is_loaded_once_and_polls_meanwhile_return_at_once(tmp_path):
    job = PlanJob(tmp_path, tmp_path / "no-such-twin", trials=1, exercise="trunk_extension", targets="")
    job.process.wait(timeout=120)
    assert job.state == "failed"  # the child refused the missing twin; its log says why
    assert "no-such-twin" in job.output()

    calls, started = [], threading.Event()

    def slow_load():
        calls.append(1)
        started.set()
        time.sleep(1.0)
        return "loaded profile.json"

    first = threading.Thread(target=lambda: job.finish(slow_load))
    first.start()
    started.wait(5)
    t0 = time.perf_counter()
    assert job.finish(slow_load) is None  # another poll is loading: no second load, no wait
    assert time.perf_counter() - t0 < 0.5
    first.join()
    assert job.finish(slow_load) == "loaded profile.json"
    assert len(calls) == 1
