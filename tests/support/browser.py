"""Debian's Chromium, headless, driven by Playwright for Python; every request a page makes is recorded.

Playwright's own browser download is never used (it needs a host the test machines cannot reach):
the browser is the system's ``chromium``, installed by ``.ci/run`` with apt-get when missing.
While a browser is open, Playwright's event loop is the thread's running loop: code that runs a loop
of its own in that thread (the Mangum handler) belongs in tests without a browser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # The microphone is Chromium's fake device (a beep), granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]  # fmt: skip


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Browser:
    handle: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @contextmanager
    def page(self) -> Iterator[Any]:
        """A fresh page (its own context: no storage shared between tests); its requests are recorded."""
        self.requests.clear()
        self.console_errors.clear()
        context = self.handle.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()


@contextmanager
def browser_page() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        handle = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield Browser(handle)
        finally:
            handle.close()
