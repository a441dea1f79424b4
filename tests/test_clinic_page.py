"""The clinic page driven in a real headless Chromium (Debian's chromium + chromium-driver):
offline, per-tab sessions, what-if answers to the slider, a small plan verified and exported,
the export passes `lumbar-twin check`, and an unverified or changed profile is refused."""
import json
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
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
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
    field = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
    field.send_keys("\n".join(str(p) for p in paths))
    return _wait_text(driver, "profile-status", lambda t: t != "")


def test_bad_input_is_refused_on_the_page_and_the_server_keeps_running(server, browser, tmp_path, caplog):
    """Runs after the plan test: it tampers with the profile that test downloaded."""
    url, _ = server
    exported = browser.downloads / "profile.json"
    assert exported.is_file(), "test_plan_whatif_export_and_check downloads the profile this test tampers with"
    doc = json.loads(exported.read_text())

    # a profile whose CSV no longer matches its checksum
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    rows = (browser.downloads / doc["csv"]).read_text().splitlines()
    rows[5] = ",".join(rows[5].split(",")[:-1] + ["1.0"])
    (tampered / doc["csv"]).write_text("\n".join(rows) + "\n")
    shutil.copy(exported, tampered / "profile.json")
    browser.get(url)
    status = _upload(browser, tampered / "profile.json", tampered / doc["csv"])
    assert "profile refused" in status and ("sha256" in status or "checksum" in status), status
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)

    # a profile made for another twin: loads for what-if, cannot be exported
    other = tmp_path / "other"
    other.mkdir()
    doc["provenance"]["twin_sha256"] = "0" * 64
    (other / "profile.json").write_text(json.dumps(doc))
    shutil.copy(browser.downloads / doc["csv"], other / doc["csv"])
    browser.get(url)
    assert "made for another twin" in _upload(browser, other / "profile.json", other / doc["csv"])
    browser.find_element(By.ID, "export-json").click()
    assert "made for another twin" in _wait_text(browser, "export-status", lambda t: "refused" in t)

    # limits out of range: the page says so, nothing changes, the server keeps answering
    limits = browser.find_element(By.ID, "limits")
    limits.send_keys("compression_N=-5", Keys.ENTER)
    assert "compression" in _wait_text(browser, "error", lambda t: "refused" in t)
    assert any("what-if refused" in r.getMessage() for r in caplog.records)
    browser.get(url)
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)


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

    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", str(sample_twin.directory), "--port", "0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
