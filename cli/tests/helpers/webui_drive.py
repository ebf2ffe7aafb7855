#!/usr/bin/python3
"""Drive `unchoke daemon`'s web UI in headless Chromium, as a person would, and report.

Usage: webui_drive.py URL TORRENT HASH FILE_NAME PROFILE_DIR OUT_DIR MAGNET DATA_DIR

URL is the daemon's page (http://127.0.0.1:PORT/), TORRENT a .torrent file a seed serves
(through a tracker the daemon reaches), HASH its info-hash (hex), FILE_NAME one of its
files as the details panel lists it, PROFILE_DIR an empty directory for Chromium's fresh
profile, OUT_DIR where the screenshot (webui.png, or webui-failure.png) and chromedriver's
log go, MAGNET a magnet link of the same torrent, DATA_DIR the torrent's directory in the
daemon's downloads (gone once it is removed with its data).

Steps, each waited for with a bound: the page loads; a bad magnet link shows an error
banner (then dismissed); the session settings form applies (speed limits, a seed queue,
a ratio limit); the .torrent goes in through the
page's file input; its row reaches 100 %; its details list the file, the tracker and a
peers table; the file's priority set to high, skip and normal through its list, each
shown back from the daemon; labels and a ratio limit set through the torrent's form (the
labels then shown on its row); a screenshot; pause (status Stopped), resume, remove with its data (row gone); then the
magnet link through the page's form reaches 100 % and is removed keeping its data.

Prints one JSON object on stdout: {"ok", "step" (the last one begun), "error" (when not
ok), "steps" ([name, seconds since start]), "screenshot", "console" (every browser log
entry), "console_errors" (those at level SEVERE)}. Exit status 0 only when ok and no
console errors. SIGTERM ends the browser before exiting (the caller's timeout).
"""
import json
import os
import signal
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long one step may take; the download of a few MB on loopback takes seconds.
STEP_WAIT = 60


def on_term(_signum, _frame):
    # Unwinds through main's finally, which quits the browser.
    raise SystemExit(2)


def main():
    url, torrent, info_hash, file_name, profile, out, magnet, data_dir = sys.argv[1:9]
    signal.signal(signal.SIGTERM, on_term)
    report = {"ok": False, "step": "start", "steps": [], "console": [], "console_errors": []}
    started = time.monotonic()

    def step(name):
        report["step"] = name
        report["steps"].append([name, round(time.monotonic() - started, 2)])

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        # Nothing of Chromium's own reaches for the network (the test is sealed anyway).
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        "--user-data-dir=" + profile,
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        step("launch")
        driver = webdriver.Chrome(
            service=Service(CHROMEDRIVER, log_path=os.path.join(out, "chromedriver.log")),
            options=options,
        )
        driver.set_page_load_timeout(STEP_WAIT)
        wait = WebDriverWait(driver, STEP_WAIT, poll_frequency=0.2)
        by_id = lambda i: driver.find_element(By.ID, i)

        step("load")
        driver.get(url)
        # The first refresh has answered: the handshake worked.
        wait.until(lambda d: "torrent" in by_id("totals").text)

        step("error shown")
        by_id("add-magnet").send_keys("magnet:?xt=urn:btih:not-a-hash")
        driver.find_element(By.CSS_SELECTOR, "#add-magnet-form button[type=submit]").click()
        wait.until(lambda d: by_id("error").is_displayed())
        report["error_banner"] = by_id("error-text").text
        by_id("error-close").click()
        wait.until(lambda d: not by_id("error").is_displayed())
        by_id("add-magnet").clear()

        step("limits")
        # A generous limit (the download below must still finish quickly), then applied.
        # With them, a seed queue and a ratio limit (neither holds back the torrents below).
        for field, value in (("limit-down", "50000"), ("limit-up", "40000"), ("sq", "7"), ("ratio", "4.5")):
            by_id(field).clear()
            by_id(field).send_keys(value)
        for box in ("limit-down-on", "sq-on", "ratio-on"):
            if not by_id(box).is_selected():
                by_id(box).click()
        driver.find_element(By.CSS_SELECTOR, "#limits-form button[type=submit]").click()
        wait.until(lambda d: by_id("limits-saved").text == "Saved.")

        step("add")
        by_id("add-file").send_keys(torrent)
        row = f'tr[data-hash="{info_hash}"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))

        step("complete")
        WebDriverWait(driver, STEP_WAIT, poll_frequency=0.2).until(
            lambda d: d.find_element(By.CSS_SELECTOR, row + " .pct").text == "100%"
        )
        report["row_when_complete"] = driver.find_element(By.CSS_SELECTOR, row).text

        step("details")
        driver.find_element(By.CSS_SELECTOR, row + " button.details").click()
        wait.until(lambda d: file_name in by_id("details-files").text)
        report["details_files"] = by_id("details-files").text
        report["details_trackers"] = by_id("details-trackers").text
        report["details_peers"] = by_id("details-peers").text

        step("file priority")
        # Chosen in the file's list; the row then shows what the daemon holds.
        choice = driver.find_element(By.CSS_SELECTOR, f'select[aria-label="Priority of {file_name}"]')
        file_row = f'#details-files tr:has(select[aria-label="Priority of {file_name}"])'
        for value in ("high", "skip", "normal"):
            Select(choice).select_by_value(value)
            by_id("details-title").click()  # the list lets go of the focus
            wait.until(
                lambda d: d.find_element(By.CSS_SELECTOR, file_row).get_attribute("data-priority") == value
            )

        step("torrent settings")
        by_id("t-labels").clear()
        by_id("t-labels").send_keys("web, test")
        Select(by_id("t-ratio-mode")).select_by_value("1")
        by_id("t-ratio").clear()
        by_id("t-ratio").send_keys("3.5")
        driver.find_element(By.CSS_SELECTOR, "#torrent-form button[type=submit]").click()
        wait.until(lambda d: by_id("torrent-saved").text == "Saved.")
        wait.until(
            lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, row + " .label")] == ["web", "test"]
        )
        report["labels"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, row + " .label")]
        report["ratio_shown"] = by_id("t-ratio").get_attribute("value")
        report["ratio_mode_shown"] = Select(by_id("t-ratio-mode")).first_selected_option.text

        step("screenshot")
        shot = os.path.join(out, "webui.png")
        if not driver.save_screenshot(shot):
            raise RuntimeError("the screenshot was not saved")
        report["screenshot"] = shot
        by_id("details-close").click()

        step("pause")
        driver.find_element(By.CSS_SELECTOR, row + " button.toggle").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row + " .status").text == "Stopped")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row + " button.toggle").text == "Resume")

        step("resume")
        driver.find_element(By.CSS_SELECTOR, row + " button.toggle").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row + " .status").text != "Stopped")
        report["status_resumed"] = driver.find_element(By.CSS_SELECTOR, row + " .status").text

        step("remove")
        driver.find_element(By.CSS_SELECTOR, row + " button.remove").click()
        wait.until(lambda d: by_id("remove-dialog").is_displayed())
        by_id("remove-delete").click()
        by_id("remove-confirm").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        wait.until(lambda d: by_id("empty").is_displayed())
        if os.path.exists(data_dir):
            raise RuntimeError(f"removed with its data, yet {data_dir} is still there")

        step("magnet")
        # By keyboard: Enter in the field submits its form.
        by_id("add-magnet").send_keys(magnet + Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row + " .pct").text == "100%")
        report["magnet_row_when_complete"] = driver.find_element(By.CSS_SELECTOR, row).text

        step("remove keeping the data")
        driver.find_element(By.CSS_SELECTOR, row + " button.remove").click()
        wait.until(lambda d: by_id("remove-dialog").is_displayed())
        if by_id("remove-delete").is_selected():
            raise RuntimeError("'delete the data' is ticked before anyone chose it")
        by_id("remove-confirm").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        # One more refresh, so an error of the last action has had time to show.
        time.sleep(2)
        if by_id("error").is_displayed():
            raise RuntimeError("error banner after removing: " + by_id("error-text").text)

        step("done")
        report["ok"] = True
    except BaseException as e:  # noqa: BLE001 (a report, whatever failed)
        report["error"] = f"{type(e).__name__}: {e}"
        if driver is not None:
            try:
                report["page_text"] = driver.find_element(By.TAG_NAME, "body").text[:4000]
                shot = os.path.join(out, "webui-failure.png")
                if driver.save_screenshot(shot):
                    report["screenshot"] = shot
            except Exception:  # noqa: BLE001 (the browser may be gone)
                pass
    finally:
        if driver is not None:
            try:
                report["console"] = driver.get_log("browser")
            except Exception as e:  # noqa: BLE001
                report["console_unreadable"] = str(e)
            driver.quit()
    report["console_errors"] = [e for e in report["console"] if e.get("level") == "SEVERE"]
    report["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] and not report["console_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
