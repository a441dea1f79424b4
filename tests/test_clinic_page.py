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
    from app.server import make_server

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
    checked = subprocess.run([sys.executable, "-m", "planning.cli", "check", str(browser.downloads / "profile.json")],
                             cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    # a second tab on the same server has its own session: no profile, nothing exportable
    browser.switch_to.new_window("tab")
    browser.get(url)
    _wait_text(browser, "prediction", lambda t: "no profile yet" in t)
    browser.close()
    browser.switch_to.window(browser.window_handles[0])
