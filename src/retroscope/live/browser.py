"""Headless Chromium for the live page's tests and latency benchmark (Selenium).

Uses the distribution's browser and driver (Debian: ``apt-get install chromium
chromium-driver``); nothing is downloaded at run time. The flags keep Chromium off the
network it would otherwise try at start (updates, sync, field trials).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


def find_browser() -> tuple[str, str] | None:
    """(browser, driver) executables on the PATH (or /usr/lib/chromium), or None."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = next((shutil.which(d) for d in DRIVERS if shutil.which(d)), None)
    if driver is None and Path("/usr/lib/chromium/chromedriver").exists():
        driver = "/usr/lib/chromium/chromedriver"
    return (browser, driver) if browser and driver else None


def chromium():
    """A headless Selenium Chrome driver on the system Chromium, with its own profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("no chromium and chromedriver on this machine: apt-get install "
                           "chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='retroscope-chromium-')}")
    return webdriver.Chrome(service=Service(executable_path=found[1]), options=options)


def wait_for_server(port: int, server, timeout_s: float = 90.0) -> None:
    """Wait until ``server`` (a ``subprocess.Popen`` of ``retroscope serve`` with its output
    piped) accepts connections on 127.0.0.1:``port``; RuntimeError with its last output if
    it exits or the time runs out."""
    deadline = time.time() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("serve did not start: "
                                   + server.stdout.read().decode()[-2000:]) from None
            time.sleep(0.2)
