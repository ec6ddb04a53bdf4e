"""One way to start headless Chromium, shared by ``medleak report --pdf`` and the browser tests.

Playwright for Python drives an installed Chromium (Debian's ``chromium`` package, or the
executable named by ``MEDLEAK_CHROMIUM``); Playwright's own browser downloads are never needed,
so a machine without internet access can print reports. The flags keep Chromium from reaching
out on its own (update checks, sync, field trials): a report holds patient images and opens
offline, and nothing about it should touch the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from medleak.errors import MedleakError

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_ENV = "MEDLEAK_CHROMIUM"
EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET = (
    "install Chromium (Debian/Ubuntu: apt-get install chromium) "
    f"or set {CHROMIUM_ENV} to a Chrome/Chromium executable"
)
QUIET_FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-field-trial-config",
)


class BrowserUnavailable(MedleakError):
    """No headless Chromium can be started here; the message says how to get one."""


def find_chromium() -> str | None:
    """The Chromium to use: ``MEDLEAK_CHROMIUM`` if set, else the first one on ``PATH``."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        path = Path(named).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A started headless Chromium, closed on exit; ``BrowserUnavailable`` when there is none."""
    executable = find_chromium()
    if executable is None:
        where = os.environ.get(CHROMIUM_ENV)
        found = f"{CHROMIUM_ENV}={where} is not an executable file" if where else "no Chromium"
        raise BrowserUnavailable(f"{found}: {HOW_TO_GET}")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable(
            "the Python package playwright is missing: pip install 'medleak[pdf]'"
        ) from None
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=list(QUIET_FLAGS)
            )
        except PlaywrightError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserUnavailable(f"cannot start {executable} ({first}): {HOW_TO_GET}") from None
        try:
            yield browser
        finally:
            browser.close()
