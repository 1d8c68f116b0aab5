"""Render each dashboard page into a small PNG under docs/screenshots/ (`make screenshots`).

Uses the home `make run` built (BAMBAM_HOME, default ./.bambam) and the system Chromium at
/usr/bin/chromium through Playwright; never downloads a browser.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from bambam_assets.dashboard import start_in_thread
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.paths import HomePaths

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = {"status": "/", "quality": "/quality", "curves": "/curves", "freshness": "/freshness",
         "scorecard": "/scorecard",
         # a month and a day of the demo's forecast (make run: as of 2025-12-31)
         "calendar": "/calendar?park=MK&month=2026-01",
         "best_times": "/best-times?park=MK&date=2026-01-03"}
# Every plotly graph on the page has drawn its points.
GRAPHS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .every(el => el._fullData && el._fullData.some(t => (t.x || []).length > 0))"""


def main(out: Path = Path("docs/screenshots")) -> int:
    home = settings.home()
    if not HomePaths(home).warehouse.exists():
        print(f"no warehouse under {home}: run `make run` first", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    server = start_in_thread(home, "127.0.0.1", 0)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    device_scale_factor=0.6)
            for name, path in PAGES.items():
                page.goto(server.url.rstrip("/") + path)
                page.wait_for_load_state("networkidle")
                page.wait_for_function(GRAPHS_DRAWN, timeout=30_000)
                page.wait_for_timeout(500)  # let the last transitions settle
                page.screenshot(path=str(out / f"{name}.png"))
                print(f"wrote {out / f'{name}.png'}")
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
