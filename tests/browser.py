"""Serve the app on 127.0.0.1 from a thread, and drive Debian's headless Chromium at it (tests, screenshots)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = ("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver); "
           ".ci/run installs them")
# Offline and quiet: no sandbox (root in a container), no QUIC, no phoning home, a fresh profile.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--lang=en-GB")


def available() -> bool:
    """Say whether the browser tests can run here."""
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` with werkzeug on a free loopback port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="accord-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator:
    """Start headless Chromium through chromedriver with a fresh profile; yield the Selenium driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
