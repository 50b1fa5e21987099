"""Acceptance: the report page in a real browser (headless Chromium through selenium).

Skipped with the reason where selenium, Chromium or chromedriver is missing (Debian:
`apt-get install chromium chromium-driver`; CI installs them).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromedriver() -> str | None:
    return CHROMEDRIVER if Path(CHROMEDRIVER).is_file() else shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium(), _chromedriver()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    if driver_path is None:
        pytest.skip("chromedriver is not installed (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def table_cells(driver) -> list[dict[str, str]]:
    """{data-key: text} for each row of the metrics table, plus the run's name."""
    return driver.execute_script(
        """
        return Array.from(document.querySelectorAll('#metrics tbody tr')).map(tr => {
          const row = {run: tr.dataset.run};
          for (const td of tr.querySelectorAll('td[data-key]')) {
            row[td.dataset.key] = td.textContent;
          }
          return row;
        });
        """
    )


def as_number(text: str) -> float:
    return float(text.strip())


def assert_matches_eval(row: dict[str, str], run_dir: Path) -> None:
    scores = json.loads((run_dir / "eval.json").read_text())["metrics"]
    assert row["run"] == run_dir.name
    assert set(scores) <= set(row), f"missing columns: {set(scores) - set(row)}"
    for key, value in scores.items():
        shown = as_number(row[key])
        if math.isfinite(value):
            assert shown == pytest.approx(value, rel=1e-5, abs=1e-9), key
        else:
            assert shown == value, key


@pytest.mark.parametrize("which", ["single_report", "double_report"])
def test_report_in_chromium(browser, which, request, ring_runs):
    report = request.getfixturevalue(which)
    browser.get_log("browser")  # drop anything logged before this page
    open_page(browser, report)
    assert console_errors(browser) == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);"
    )
    assert len(images) >= 4
    not_loaded = [alt for alt, complete, width in images if not complete or width == 0]
    assert not_loaded == [], f"images that did not load: {not_loaded}"
    rows = table_cells(browser)
    runs = ring_runs[:1] if which == "single_report" else ring_runs
    assert len(rows) == len(runs)
    for row, run_dir in zip(rows, runs):
        assert_matches_eval(row, run_dir)
