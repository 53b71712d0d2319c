"""Take docs/playground.png: the playground after transcribing the story fixture with the local engine.

    .venv/bin/python scripts/screenshot_playground.py

Uses the system's Chromium (scripts/install_chromium.sh), like the browser tests. The committed image
was then reduced to a 32-colour palette (Pillow's quantize) to keep the repository small.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heimdall.api.app import create_app  # noqa: E402
from heimdall.config import GatewayConfig  # noqa: E402
from tests.support.browser import browser_page  # noqa: E402
from tests.support.servers import serve  # noqa: E402
from tests.support.speech import FILES  # noqa: E402


def main() -> None:
    with serve(create_app(GatewayConfig())) as gateway, browser_page() as browser, browser.page() as page:
        page.set_viewport_size({"width": 640, "height": 900})
        page.goto(f"{gateway}/playground")
        page.wait_for_function("() => document.querySelectorAll('#model option').length > 0")
        page.set_input_files("#file", str(FILES["story"]))
        page.check("#words")
        page.click("#go")
        page.wait_for_selector("#status[data-state=done]", timeout=120_000)
        page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
        page.locator("#segments li button").nth(1).click()
        page.evaluate("() => document.querySelector('#player').pause()")
        page.wait_for_selector("#segments li[aria-current=true]")
        page.screenshot(path=str(ROOT / "docs" / "playground.png"), full_page=True)


if __name__ == "__main__":
    main()
