"""Headless Chromium with the network off, for screenshots of pages (Debian's `chromium`),
and driven through Selenium with Debian's `chromium-driver` (no driver download).

Network off: every host name fails to resolve and every proxied request goes to
a closed port, so a page draws only with what it holds itself. As a script,
`python tests/browser.py PAGE.html SHOT.png [WIDTH HEIGHT]` takes one screenshot
(the README's figures in docs/ were taken so).
"""

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]
# The same, but for a page served from 127.0.0.1 (Chromium never proxies loopback addresses).
OFFLINE_BUT_LOOPBACK = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", OFFLINE[1]]


def browser():
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        raise RuntimeError("no Chromium found: `apt-get install -y chromium` (.ci/run installs it)")
    return found


def screenshot(page, png, width=1000, height=800):
    """Open page (a file) offline and save what the window shows; returns png."""
    command = [
        browser(),
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        *OFFLINE,
        # Time for scripts to draw, without waiting in real time.
        "--virtual-time-budget=15000",
        f"--window-size={width},{height}",
        f"--screenshot={Path(png).resolve()}",
        Path(page).resolve().as_uri(),
    ]
    environment = {**os.environ, "HOME": str(Path(png).resolve().parent)}  # its profile, not the user's
    subprocess.run(command, check=True, capture_output=True, timeout=120, env=environment)
    return png


@contextmanager
def driven_browser(width=1280, height=900):
    """A Selenium WebDriver on headless Chromium, offline but for pages served from 127.0.0.1."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        raise RuntimeError("no chromedriver: `apt-get install -y chromium-driver` (.ci/run installs it)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser()
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},{height}",
        *OFFLINE_BUT_LOOPBACK,
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def coloured_pixels(png):
    """Pixels with a clear colour (not white, grey or black): what charts draw, not text or page."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int(np.sum(pixels.max(axis=-1) - pixels.min(axis=-1) > 60))


if __name__ == "__main__":
    page, png, *size = sys.argv[1:]
    screenshot(page, png, *map(int, size))
