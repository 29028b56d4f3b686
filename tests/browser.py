"""Headless Chromium (Debian's `chromium` and `chromium-driver`) through Selenium, for the pages.

Where the browser is missing the browser tests skip, except in CI (`CI` set), where `.ci/run`
installs it and a missing one fails. Selenium is pointed at Debian's driver and browser by path,
so Selenium Manager never tries to download one.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
BROWSER_MISSING = (CHROMIUM is None or DRIVER is None) and not os.environ.get("CI")
needs_browser = pytest.mark.skipif(BROWSER_MISSING, reason="chromium and chromium-driver are not installed "
                                   "(apt-get install chromium chromium-driver; .ci/run does)")


@contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 900) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and DRIVER, "chromium and chromium-driver must be installed"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", f"--user-data-dir={profile}", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The page's console messages at SEVERE (errors, uncaught exceptions, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def full_page_screenshot(driver: Any, path: Path) -> Path:
    """The whole page, not only the window: the window is grown to the page's height first."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    width = int(driver.execute_script("return window.outerWidth"))
    driver.set_window_size(width, min(max(height + 100, 900), 16000))
    driver.save_screenshot(str(path))
    return path
