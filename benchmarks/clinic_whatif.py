"""The clinic page's what-if round trip: from the slider's key event in a headless Chromium to
the page showing the new prediction (text and both plots), with the server pinned to 2 cores;
and the server's memory (RSS now, and its peak). Target: each answer <= 1 s (issue 15).

Builds the sample twin, starts `lumbar-twin serve` in its own process (taskset -c 0,1), plans a
small profile from the page, then moves the assistance slider `--moves` times, the exercise speed
slider 4 times (new kinematics and sample count) and changes the exercise once. Optionally plans
a second profile (so the plan view compares two) and saves screenshots of the main views
(docs/img/ for the docs).

    python benchmarks/clinic_whatif.py [--moves 10] [--trials 20] [--screenshots docs/img]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _answer(driver, before: str, timeout: float = 30.0) -> str:
    """Wait until the prediction text differs from `before` and no Dash callback is pending."""
    WebDriverWait(driver, timeout, poll_frequency=0.005).until(
        lambda d: d.find_element(By.ID, "prediction").text not in (before, "")
        and not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading=true]"))
    return driver.find_element(By.ID, "prediction").text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--screenshots", type=Path, help="folder for PNG screenshots of the main views")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clinic-bench-"))
    subprocess.run([sys.executable, "-m", "app.cli", "build", str(REPO / "data/sample/patient.json"),
                    "--out", str(work / "twin")], cwd=REPO, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(["taskset", "-c", "0,1", sys.executable, "-m", "app.cli", "serve", str(work / "twin"),
                               "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    print(server.stdout.readline().strip())
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                              options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        trials = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "trials"))
        trials.clear()
        trials.send_keys(str(args.trials))
        start = time.perf_counter()
        driver.find_element(By.ID, "plan-start").click()
        WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "plan-state").text.startswith(("done", "failed")))
        print(f"plan from the page ({args.trials} trials, both verifications): {time.perf_counter() - start:.1f} s, "
              f"{driver.find_element(By.ID, 'plan-state').text[:60]}")
        text = _answer(driver, "no profile yet: plan one below or load a profile.json")
        if args.screenshots:  # a second plan (another target) so that the plan view compares two
            targets = driver.find_element(By.ID, "targets")
            targets.clear()
            targets.send_keys("multifidus=0.25", Keys.ENTER)
            text = _answer(driver, text)
            driver.find_element(By.ID, "plan-start").click()
            WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "plan-state").text.startswith("running"))
            WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "plan-state").text.startswith(("done", "failed")))
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "compare-forces"))
            text = _answer(driver, text)  # the new profile's prediction
            args.screenshots.mkdir(parents=True, exist_ok=True)
            driver.set_window_size(1300, 2600)  # a section taller than the window is cut off
            sections = driver.find_elements(By.TAG_NAME, "section")
            driver.execute_script("window.scrollTo(0, 0)")
            for name, section in zip(("clinic_patient", "clinic_session", "clinic_whatif", "clinic_plan",
                                      "clinic_export"), sections):
                driver.execute_script("arguments[0].scrollIntoView()", section)
                section.screenshot(str(args.screenshots / f"{name}.png"))
            driver.set_window_size(1300, 900)
        thumb = driver.find_element(By.CSS_SELECTOR, "#scale [role=slider]")
        times = []
        for k in range(args.moves):
            start = time.perf_counter()
            thumb.send_keys(Keys.ARROW_RIGHT if k % 4 < 2 else Keys.ARROW_LEFT)
            text = _answer(driver, text)
            times.append(time.perf_counter() - start)
        print(f"what-if round trip, slider ({args.moves} moves, server on 2 cores): median {statistics.median(times):.3f} s, "
              f"max {max(times):.3f} s (target <= 1 s)")
        speed = driver.find_element(By.CSS_SELECTOR, "#speed [role=slider]")
        times = []
        for k in range(4):  # 1 -> 1.05 -> 1.1 -> 1.05 -> 1: new kinematics and sample count each time
            start = time.perf_counter()
            speed.send_keys(Keys.ARROW_RIGHT if k < 2 else Keys.ARROW_LEFT)
            text = _answer(driver, text)
            times.append(time.perf_counter() - start)
        print(f"what-if round trip, exercise speed (4 moves, new kinematics): median {statistics.median(times):.3f} s, "
              f"max {max(times):.3f} s")
        start = time.perf_counter()
        driver.find_element(By.ID, "exercise").click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.XPATH, "//*[normalize-space(text())='lateral_bend']")).click()
        _answer(driver, text)
        print(f"what-if round trip, another exercise (new kinematics): {time.perf_counter() - start:.3f} s")
        rss, peak = _rss_mib(server.pid)
        print(f"server memory: RSS {rss:.0f} MiB now, peak {peak:.0f} MiB (the plan itself runs in a child process)")
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
