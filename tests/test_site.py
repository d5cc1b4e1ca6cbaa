"""The documentation site builds strictly and renders in a real browser.

``mkdocs build --strict`` (a broken link, a missing page or an API reference that does not
resolve fails it) writes the site to a temporary directory; a local HTTP server on 127.0.0.1
serves it and records every request; headless Chromium (Debian's ``chromium`` package, which
``bash dev.sh test`` installs) opens the home page, a tutorial and an API page. Each must render
its content and its figures (every ``<img>`` of the article requested and served, a real PNG),
with nothing logged to the browser console. Screenshots are kept in ``build/artifacts/`` as test
artefacts. The tutorials are executed by the build through the cache they share with
``tests/test_tutorials.py``, so they do not run twice.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "artifacts"
PAGES = {
    "home": ("/", ["Quick start", "BP1"]),
    "tutorial": ("/tutorials/ch3_improving_learning/", ["The learning-rate range test", "suggested eta"]),
    "api": ("/api/layers/", ["Linear", "BP4", "Conv2d"]),
}


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium not found: apt-get install chromium (bash dev.sh test installs it)")
    return path


class Recorder(http.server.SimpleHTTPRequestHandler):
    requests: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.requests.append((urlparse(self.path).path, int(code)))

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env["NO_MKDOCS_2_WARNING"] = "1"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    return out


@pytest.fixture(scope="module")
def server(site):
    requests: list[tuple[str, int]] = []
    handler = type("Handler", (Recorder,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def browse(url: str, tmp: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Open ``url`` in headless Chromium: the DOM after its scripts ran, and the console lines
    it logged (or, with ``screenshot``, write that instead of dumping the DOM)."""
    args = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--window-size=1280,1000", "--virtual-time-budget=5000",
    ]  # fmt: skip
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    run = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    return run.stdout, console


class Images(HTMLParser):
    """The ``src`` of every ``<img>`` inside the article (not the theme's logo)."""

    def __init__(self):
        super().__init__()
        self.depth, self.srcs = 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article":
            self.depth += 1
        elif tag == "img" and self.depth:
            self.srcs.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "article":
            self.depth -= 1


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_with_its_figures_and_no_console_errors(name, site, server, tmp_path):
    base, requests = server
    path, must_say = PAGES[name]
    url = base + path
    dom, console = browse(url, tmp_path)
    assert not console, f"{name}: the browser console logged:\n" + "\n".join(console)
    assert 'class="md-content"' in dom, f"{name}: the theme did not render"
    text = visible_text(dom)
    for phrase in must_say:
        assert phrase in text, f"{name}: {phrase!r} is not on the page"

    parser = Images()
    parser.feed(dom)
    if name != "api":  # the API pages have no figures; the home page and the tutorial do
        assert parser.srcs, f"{name}: no figure in the article"
    served = dict(requests)
    for src in parser.srcs:
        target = urlparse(urljoin(url, src)).path
        assert served.get(target) == 200, f"{name}: figure {src} was not served ({served.get(target)})"
        assert (site / target.lstrip("/")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (
            f"{name}: {src} is no PNG"
        )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"site-{name}.png"
    shot.unlink(missing_ok=True)
    browse(url, tmp_path, screenshot=shot)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1000, 1280), pixels.shape
    assert np.std(pixels[..., :3]) > 0.05, f"{name}: the screenshot is blank"


def test_the_console_check_sees_a_script_error(site, server, tmp_path):
    """The check above can fail: a page whose script throws is caught by the same means."""
    base, _ = server
    (site / "broken.html").write_text(
        "<html><body><p>x</p><script>undefinedFunction()</script></body></html>"
    )
    _, console = browse(base + "/broken.html", tmp_path)
    assert any("undefinedFunction" in line for line in console), console
