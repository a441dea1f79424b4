"""The clinic page driven in a real headless Chromium (Debian's chromium + chromium-driver):
offline, per-tab sessions, what-if answers to the sliders (scale, speed, shape), a small plan
verified and exported, the export (json, csv, ROS 2) passes `lumbar-twin check` or equals the
CSV, an unverified or changed profile is refused, temporary folders do not outlive their use.
Each test opens the page afresh; profiles to upload come from the shared `exported_plan`."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("dash")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMEDRIVER is None or shutil.which("chromium") is None,
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture(scope="module")
def server(sample_twin):
    from app.clinic.server import make_server

    srv, context = make_server(sample_twin.directory, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/", context
    srv.shutdown()
    context.close()
    assert not context.sessions.folders()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2400"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def _wait_text(driver, element_id, predicate, timeout=30):
    WebDriverWait(driver, timeout).until(lambda d: predicate(_text(d, element_id)))
    return _text(driver, element_id)


def _request_hosts(driver):
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith("data:"):
                hosts.add(url.split("/")[2])
    return hosts


def test_page_is_local_and_refuses_export_without_profile(server, browser):
    url, context = server
    browser.get(url)
    heading = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "h2"))
    assert heading.text == f"Patient {context.subject}"
    # each morphometry row with its imaging QC status and how it entered the twin
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#morphometry th")]
    assert {"qc", "use"} <= set(headers), headers
    cells = browser.find_elements(By.CSS_SELECTOR, "#morphometry td[data-dash-column=qc]")
    assert cells and {c.text for c in cells} == {"pass"}  # the sample's rows all passed QC
    assert "0 of 40 rows not measured" in _text(browser, "morphometry-summary")
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
    # the limits a plan would be held to, before any profile: the patient's 2500 N and psoas cap
    limits = _wait_text(browser, "session-limits", lambda t: "device: max force" in t)
    assert "L5-S1 2500 N" in limits and "psoas activation <= 0.5" in limits, limits
    browser.find_element(By.ID, "export-json").click()
    assert "export refused: no profile yet" in _wait_text(browser, "export-status", lambda t: "refused" in t)
    # every script, style and font from this server: nothing leaves 127.0.0.1
    assert _request_hosts(browser) == {url.split("/")[2]}


def test_plan_whatif_export_and_check(server, browser, tmp_path):
    url, _ = server
    browser.get(url)
    trials = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "trials"))
    trials.clear()
    trials.send_keys("8")
    browser.find_element(By.ID, "plan-start").click()
    state = _wait_text(browser, "plan-state", lambda t: t.startswith(("done", "failed", "cancelled")), timeout=120)
    assert state.startswith("done"), _text(browser, "verification")
    verification = _text(browser, "verification")
    assert "passed (model consistency)" in verification
    assert "StaticOptimization + JointReaction" in verification and "passed" in verification
    _wait_text(browser, "export-status", lambda t: t.startswith("exportable"))  # verified, unchanged
    before = _wait_text(browser, "prediction", lambda t: "target" in t)

    thumb = browser.find_element(By.CSS_SELECTOR, "#scale [role=slider]")
    thumb.send_keys(*[Keys.ARROW_RIGHT] * 6)  # 1.0 -> 1.3
    after = _wait_text(browser, "prediction", lambda t: t != before and "target" in t)
    assert after != before
    # the changed profile is not the verified one: refused, and the page says why
    browser.find_element(By.ID, "export-json").click()
    assert "changed by what-if" in _wait_text(browser, "export-status", lambda t: "changed by what-if" in t)
    assert not list(browser.downloads.glob("*"))

    thumb.send_keys(*[Keys.ARROW_LEFT] * 6)  # back to the verified profile
    assert _wait_text(browser, "prediction", lambda t: t == before) == before
    _wait_text(browser, "export-status", lambda t: "exportable" in t)
    browser.find_element(By.ID, "export-json").click()
    browser.find_element(By.ID, "export-csv").click()
    deadline = time.time() + 20
    while time.time() < deadline and not ((browser.downloads / "profile.json").is_file()
                                          and (browser.downloads / "profile.csv").is_file()):
        time.sleep(0.2)
    checked = subprocess.run([sys.executable, "-m", "app.cli", "check", str(browser.downloads / "profile.json")],
                             cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    # a second tab on the same server has its own session: no profile, nothing exportable
    browser.switch_to.new_window("tab")
    browser.get(url)
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
    browser.close()
    browser.switch_to.window(browser.window_handles[0])


def _upload(driver, *paths):
    """Select files in the upload field; the status line names the .json, so uploading the same
    name twice in a row needs a renamed copy (_renamed) to see the second answer (the page reads
    the same files chosen twice, but its answer text would not change)."""
    field = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
    old = _text(driver, "profile-status")
    driver.execute_script("arguments[0].value = '';", field)  # chromedriver appends to a multiple input
    field.send_keys("\n".join(str(p) for p in paths))
    return _wait_text(driver, "profile-status", lambda t: t not in ("", old))


def _renamed(exported_plan, folder, name):
    """The exported profile as `name`.json beside its profile.csv (the CSV name is in the JSON)."""
    folder.mkdir()
    shutil.copy(exported_plan / "profile.json", folder / f"{name}.json")
    shutil.copy(exported_plan / "profile.csv", folder / "profile.csv")
    return folder / f"{name}.json", folder / "profile.csv"


def test_bad_input_is_refused_on_the_page_and_the_server_keeps_running(server, browser, exported_plan, tmp_path,
                                                                      caplog):
    url, context = server
    doc = json.loads((exported_plan / "profile.json").read_text())
    folders = set(context.sessions.folders())

    # limits out of range before any profile: said at once, and no plan starts with them
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "limits")).send_keys("psoas=1.5", Keys.ENTER)
    assert "activation cap is in (0, 1]" in _wait_text(browser, "error", lambda t: "refused" in t)
    browser.find_element(By.ID, "plan-start").click()
    assert "activation cap" in _wait_text(browser, "plan-state", lambda t: "refused" in t)
    assert set(context.sessions.folders()) == folders  # no plan run was started

    # a profile whose CSV no longer matches its checksum
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    rows = (exported_plan / doc["csv"]).read_text().splitlines()
    rows[5] = ",".join(rows[5].split(",")[:-1] + ["1.0"])
    (tampered / doc["csv"]).write_text("\n".join(rows) + "\n")
    shutil.copy(exported_plan / "profile.json", tampered / "profile.json")
    browser.get(url)
    status = _upload(browser, tampered / "profile.json", tampered / doc["csv"])
    assert "profile refused" in status and ("sha256" in status or "checksum" in status), status
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
    assert set(context.sessions.folders()) == folders  # the refused upload left no folder

    # a profile made for another twin: loads for what-if, cannot be exported
    other = tmp_path / "other"
    other.mkdir()
    doc["provenance"]["twin_sha256"] = "0" * 64
    (other / "profile.json").write_text(json.dumps(doc))
    shutil.copy(exported_plan / doc["csv"], other / doc["csv"])
    browser.get(url)
    assert "planned for another twin" in _upload(browser, other / "profile.json", other / doc["csv"])
    browser.find_element(By.ID, "export-json").click()
    assert "planned for another twin" in _wait_text(browser, "export-status", lambda t: "refused" in t)

    # limits out of range: the page says so, nothing changes, the server keeps answering
    limits = browser.find_element(By.ID, "limits")
    limits.send_keys("compression_N=-5", Keys.ENTER)
    assert "compression" in _wait_text(browser, "error", lambda t: "refused" in t)
    messages = [r.getMessage() for r in caplog.records]
    for logged in ("session refused", "plan refused", "profile refused", "planned for another twin", "what-if refused",
                   "export refused"):
        assert any(logged in m for m in messages), logged
    browser.get(url)
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)


def _wait_download(folder, name, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and not (folder / name).is_file():
        time.sleep(0.2)
    return folder / name


def test_loaded_profile_speed_shape_ros2_export_compare_and_folders(server, browser, exported_plan, tmp_path):
    """A verified profile loaded from files: its ROS 2 file downloads and equals its CSV; the
    speed and shape sliders change the prediction and stop the export; a second load is compared
    with the first; replaced upload folders are removed; another tab does not see any of it."""
    import numpy as np
    import yaml

    url, context = server
    files = (exported_plan / "profile.json", exported_plan / "profile.csv")
    browser.get(url)
    before = set(context.sessions.folders())
    assert _upload(browser, *files).endswith("loaded profile.json")
    first = set(context.sessions.folders()) - before
    assert len(first) == 1
    # loading sets the session to the profile's own exercise and targets: verified and unchanged
    assert browser.find_element(By.ID, "targets").get_attribute("value") == "multifidus=0.25"
    _wait_text(browser, "export-status", lambda t: t.startswith("exportable"))
    plain = _wait_text(browser, "prediction", lambda t: "600 samples" in t)

    ros2 = browser.downloads / "profile.ros2.yaml"
    ros2.unlink(missing_ok=True)
    browser.find_element(By.ID, "export-ros2").click()
    doc = yaml.safe_load(_wait_download(browser.downloads, "profile.ros2.yaml").read_text())
    csv_rows = np.loadtxt(files[1], delimiter=",", skiprows=1)
    assert doc["joint_names"] == ["thorax_pad_fx", "thorax_pad_fy", "thorax_pad_fz"]
    assert len(doc["points"]) == len(csv_rows) == 600
    np.testing.assert_allclose([p["effort"] for p in doc["points"]], csv_rows[:, 1:], atol=1e-6)
    np.testing.assert_allclose([p["time_from_start"]["sec"] + p["time_from_start"]["nanosec"] * 1e-9
                                for p in doc["points"]], csv_rows[:, 0], atol=1e-9)
    ros2.unlink()

    # faster: 1.25 x -> 4.8 s a cycle, 480 samples; the changed profile is not exportable
    speed = browser.find_element(By.CSS_SELECTOR, "#speed [role=slider]")
    speed.send_keys(*[Keys.ARROW_RIGHT] * 5)
    fast = _wait_text(browser, "prediction", lambda t: "speed 1.25: 4.8 s a cycle, 480 samples" in t)
    # quasi-static: the same force at the same pose gives the same activations, but the force
    # changes faster (N/s grows with speed) and the loads play over the shorter cycle
    rate = [float(t.split("peak rate of change ")[1].split(" N/s")[0]) for t in (plain, fast)]
    assert rate[1] == pytest.approx(1.25 * rate[0], rel=0.05), rate
    last_time = browser.execute_script(
        "return document.querySelector('#loads .js-plotly-plot')._fullLayout.xaxis.range[1];")
    assert last_time == pytest.approx(4.79, abs=0.01)  # the last sample of a 4.8 s cycle
    browser.find_element(By.ID, "export-ros2").click()
    assert "changed by what-if" in _wait_text(browser, "export-status", lambda t: "refused" in t)
    speed.send_keys(*[Keys.ARROW_LEFT] * 5)
    _wait_text(browser, "prediction", lambda t: t == plain)
    shape = browser.find_element(By.CSS_SELECTOR, "#shape [role=slider]")
    shape.send_keys(*[Keys.ARROW_RIGHT] * 4)  # 1 -> 2: the force concentrated at its peak
    sharp = _wait_text(browser, "prediction", lambda t: "shape 2," in t)
    assert sharp.split("\n")[2:] != plain.split("\n")[2:]  # less help between peaks: other activations
    browser.find_element(By.ID, "export-json").click()
    assert "changed by what-if" in _wait_text(browser, "export-status", lambda t: "refused" in t)
    shape.send_keys(*[Keys.ARROW_LEFT] * 4)
    _wait_text(browser, "export-status", lambda t: t.startswith("exportable"))
    assert not ros2.exists()

    # a second load: shown beside the first; a third: the first upload's folder is gone
    assert _upload(browser, *_renamed(exported_plan, tmp_path / "second", "second")).endswith("loaded second.json")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-table td"))
    table = _text(browser, "compare-table")
    assert "previous" in table and "current" in table and "trunk_extension" in table
    assert browser.find_elements(By.ID, "compare-forces")
    mine = set(context.sessions.folders()) - before
    assert len(mine) == 2 and first <= mine
    browser.refresh()  # same page, new session id: its own folders
    before = set(context.sessions.folders())
    for k in range(3):
        assert _upload(browser, *_renamed(exported_plan, tmp_path / f"again{k}", f"again{k}")).endswith(".json")
    mine = set(context.sessions.folders()) - before
    assert len(mine) == 2 and all(f.is_dir() for f in mine)  # the current and the compared profile only
    assert first <= set(context.sessions.folders())  # the other session's folder is its own

    # another tab on the same server: its own session, nothing loaded, nothing exportable
    browser.switch_to.new_window("tab")
    browser.get(url)
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
    browser.find_element(By.ID, "export-ros2").click()
    assert "no profile yet" in _wait_text(browser, "export-status", lambda t: "refused" in t)
    browser.close()
    browser.switch_to.window(browser.window_handles[0])
    _wait_text(browser, "export-status", lambda t: t.startswith("exportable"))


def test_cancel_stops_a_plan(server, browser):
    url, _ = server
    browser.get(url)
    trials = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "trials"))
    trials.clear()
    trials.send_keys("2000")
    browser.find_element(By.ID, "plan-start").click()
    _wait_text(browser, "plan-state", lambda t: t.startswith("running"))
    browser.find_element(By.ID, "plan-cancel").click()
    _wait_text(browser, "plan-state", lambda t: t == "cancelled")
    assert int(browser.find_element(By.ID, "progress").get_attribute("value") or 0) < 2000
    browser.find_element(By.ID, "export-json").click()
    assert "no profile yet" in _wait_text(browser, "export-status", lambda t: "refused" in t)


def test_broken_twin_folder_is_named_on_the_page(tmp_path, caplog):
    from app.clinic.server import create_app

    app, context = create_app(tmp_path / "not-a-twin")
    assert context.twin is None and "twin folder not found" in context.error
    assert any("twin folder not found" in r.getMessage() for r in caplog.records)
    layout = app.server.test_client().get("/_dash-layout")
    assert layout.status_code == 200 and "twin folder not found" in layout.get_data(as_text=True)


def test_serve_prints_its_loopback_address_and_stops_cleanly_on_ctrl_c(sample_twin):
    import signal
    import urllib.request

    # Started as a script's background job is: SIGINT inherited ignored. Ctrl-C must still stop it.
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", str(sample_twin.directory), "--port", "0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        first = process.stdout.readline()
        address = first.split("http://", 1)[1].split("/", 1)[0]
        assert address.startswith("127.0.0.1:"), first
        assert urllib.request.urlopen(f"http://{address}/", timeout=10).status == 200
        process.send_signal(signal.SIGINT)
        out = process.communicate(timeout=20)[0]
    finally:
        process.kill()
    assert process.returncode == 0 and "clinic page stopped" in out and "Traceback" not in out


def test_sigterm_stops_the_plan_and_removes_every_temporary_folder(browser, exported_plan, tmp_path):
    """Served from a patient file (a twin built into a temporary folder), with a loaded profile
    and a plan running: SIGTERM stops the plan and leaves nothing in the temporary directory."""
    import signal

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", str(REPO / "data/sample/patient.json"),
                                "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "TMPDIR": str(scratch)})
    try:
        lines = [process.stdout.readline() for _ in range(1)]
        while "http://" not in lines[-1] and lines[-1] and len(lines) < 50:  # the build may log first
            lines.append(process.stdout.readline())
        assert "http://" in lines[-1], lines
        url = "http://" + lines[-1].split("http://", 1)[1].split()[0]
        browser.get(url)
        assert _upload(browser, exported_plan / "profile.json", exported_plan / "profile.csv").endswith("profile.json")
        trials = browser.find_element(By.ID, "trials")
        trials.clear()
        trials.send_keys("2000")
        browser.find_element(By.ID, "plan-start").click()
        _wait_text(browser, "plan-state", lambda t: t.startswith("running"))
        names = sorted(p.name.rsplit("-", 1)[0] for p in scratch.iterdir())
        assert names == ["lumbar-twin-plan", "lumbar-twin-serve", "lumbar-twin-upload"], names
        process.send_signal(signal.SIGTERM)
        out = process.communicate(timeout=30)[0]
    finally:
        process.kill()
    assert process.returncode == 0 and "clinic page stopped" in out and "Traceback" not in out, out
    assert not list(scratch.iterdir())
    # the plan's child process is gone too (nothing runs with the removed folder in its command line)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(scratch) not in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            pass


def test_morphometry_rows_mark_qc_and_levels_not_measured(sample_twin, tmp_path):
    """The patient table's summary and highlighting follow twin.json's morphometry_use: a row
    estimated, one from the template, one measured with a QC warning (edited into a copy)."""
    from app.clinic.server import create_app

    twin = tmp_path / "twin"
    shutil.copytree(sample_twin.directory, twin)
    doc = json.loads((twin / "twin.json").read_text())
    rows = doc["morphometry_use"]
    rows[0].update(use="estimated", note="from the autochthon row", qc="pass")
    rows[1].update(use="template", note="not measured", qc="not imaged")
    rows[2].update(qc="warn", note="fat fraction unusually high")
    (twin / "twin.json").write_text(json.dumps(doc))
    app, context = create_app(twin)
    assert context.error is None
    layout = app.server.test_client().get("/_dash-layout").get_data(as_text=True)
    assert "2 of 40 rows not measured (estimated or template, highlighted); 1 with a QC warning" in layout
    table = json.loads(layout)
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == "morphometry":
                found.append(node["props"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(table)
    props = found[0]
    assert [r["qc"] for r in props["data"][:3]] == ["pass", "not imaged", "warn"]
    styles = {s["if"]["filter_query"] for s in props["style_data_conditional"]}
    assert {'{use} != "measured"', '{qc} = "warn"', '{qc} = "fail"'} <= styles
