"""The dashboard's own scripts: plotly.js's basic bundle (vendored, at the Python plotly's
plotly.js version) and the preloaded chunks, as the served page names them."""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs_version

from bambam_assets.dashboard.app import ASSETS, PRELOAD, create_app


def test_the_basic_bundle_is_the_python_plotlys_version() -> None:
    head = (ASSETS / "plotly-basic.min.js").read_text(encoding="utf-8")[:300]
    version = re.search(r"plotly\.js \(basic - minified\) v(\S+)", head)
    assert version, head
    assert version[1] == get_plotlyjs_version(), "run `make vendor-plotly`"
    assert (ASSETS / "plotly-basic.LICENSE.txt").read_text().startswith("MIT License")


def test_the_page_loads_the_basic_bundle_and_preloads_the_chunks(tmp_path: Path) -> None:
    app = create_app(tmp_path, use_env_credentials=False)
    html = app.server.test_client().get("/").get_data(as_text=True)
    assert re.search(r'<script src="/assets/plotly-basic\.min\.js\?m=[\d.]+"></script>', html)
    assert "package_data/plotly.min.js" not in html
    for chunk in PRELOAD:
        assert f'<link rel="preload" as="script" href="/_dash-component-suites/{chunk}">' in html
        served = app.server.test_client().get(f"/_dash-component-suites/{chunk}")
        assert served.status_code == 200 and len(served.data) > 1000, chunk
