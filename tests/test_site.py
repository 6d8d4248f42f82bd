"""The built website in headless Chromium, offline: every page loads without errors or requests
to other sites, math is typeset, kernel-free figures respond to their controls, and each chapter's
Colab button opens that chapter's notebook."""
from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_book import chapters, toc_files

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MATH_DONE = ("() => !!(window.MathJax && MathJax.Hub && MathJax.Hub.queue"
             " && MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0"
             " && document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML, mjx-chtml').length > 0)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(built_book):
    """The built HTML served on 127.0.0.1 at a free port; yields its base URL."""
    assert built_book.returncode == 0, "the book did not build: see tests/test_book.py"
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: run `apt-get install -y chromium` (as root), "
                    "or use `make test`, which installs it.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visit:
    """One page opened offline: requests to anything but the local server are refused and recorded."""

    def __init__(self, browser, base: str, path: str):
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.external: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", functools.partial(self._route, base))
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                     if msg.type == "error" else None)
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        self.response = self.page.goto(base + path, wait_until="load")

    def _route(self, base: str, route) -> None:
        url = route.request.url
        if url.startswith(base) or url.startswith("data:"):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def site_pages() -> list[str]:
    return ["index.html", *[f"{f}.html" for f in toc_files()], "genindex.html", "search.html"]


@pytest.fixture
def visit(browser, site):
    opened: list[Visit] = []

    def open_page(path: str) -> Visit:
        v = Visit(browser, site, path)
        opened.append(v)
        return v

    yield open_page
    for v in opened:
        v.close()


@pytest.mark.parametrize("path", site_pages())
def test_page_loads_offline_without_errors(visit, path):
    v = visit(path)
    assert v.response is not None and v.response.ok, f"{path}: HTTP {v.response and v.response.status}"
    if v.page.locator(".math").count():
        v.page.wait_for_function(MATH_DONE, timeout=30_000)
    v.page.wait_for_load_state("networkidle")
    assert not v.external, f"{path} asked other sites for: {v.external}"
    assert not v.errors, f"{path}: {v.errors}"


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_math_is_typeset(visit, chapter):
    v = visit(f"{chapter}.html")
    assert v.page.locator(".math").count() > 0, f"{chapter}: no math on the page"
    v.page.wait_for_function(MATH_DONE, timeout=30_000)
    typeset = v.page.locator(".MathJax, .MathJax_Display, .MathJax_CHTML, mjx-chtml").count()
    assert typeset > 0
    assert v.page.locator(".MathJax_Error, .math .noError").count() == 0, f"{chapter}: MathJax could not typeset"
    text = v.page.locator("main").inner_text()
    assert "$$" not in text, f"{chapter}: raw $$ left on the page"
    assert not v.external, v.external


# Moves a control to its `index`-th value the way a reader does, then reports the frame shown.
_MOVE = """([el, index]) => {
  el.value = String(index);
  el.dispatchEvent(new Event('input', {bubbles: true}));
  const root = el.closest('div.gradlab-kf');
  return [root.querySelector('img.gl-frame').getAttribute('src'), root.dataset.glFrame];
}"""
_SIZE = "el => el.tagName === 'SELECT' ? el.options.length : (+el.max - +el.min + 1)"


@pytest.mark.parametrize("chapter", chapters())
def test_kernel_free_figures_follow_their_controls(visit, chapter):
    v = visit(f"{chapter}.html")
    figures = v.page.locator("div.gradlab-kf")
    assert figures.count() > 0, f"{chapter}: no kernel-free figure"
    for i in range(figures.count()):
        figure = figures.nth(i)
        controls = figure.locator("[data-gl-axis]")
        assert controls.count() > 0, f"{chapter}: figure {i} has no control"
        for j in range(controls.count()):
            control = controls.nth(j)
            start = int(control.input_value())
            src0 = figure.locator("img.gl-frame").get_attribute("src")
            frame0 = figure.get_attribute("data-gl-frame")
            n = control.evaluate(_SIZE)
            assert n >= 2, f"{chapter}: figure {i}, control {j} has a single value"
            changed = False
            for index in [k for k in range(n - 1, -1, -1) if k != start]:
                src, frame = v.page.evaluate(_MOVE, [control.element_handle(), index])
                assert frame != frame0, f"{chapter}: figure {i}, control {j}: the frame index did not move"
                if src != src0:
                    changed = True
                    break
            assert changed, f"{chapter}: figure {i}: moving control {j} never changed the picture"
            v.page.evaluate(_MOVE, [control.element_handle(), start])
    assert not v.errors, v.errors


def test_website_explorer_reports_divergence_and_recovers(visit):
    """Chapter 1's explorer pushed to its largest learning rate says "diverged at step k" on the
    static site too, in the warning colour, and a small learning rate clears the warning."""
    v = visit("notebooks/01_gradient_descent.html")
    figure = v.page.locator("div.gradlab-kf").filter(has_text="Gradient descent on a loss surface").first
    lr = figure.locator("input[type=range]").first
    status = figure.locator(".gl-status")
    v.page.evaluate(_MOVE, [lr.element_handle(), int(lr.evaluate("el => el.max"))])
    assert re.search(r"diverged at step \d+", status.inner_text()), status.inner_text()
    assert status.evaluate("el => el.style.color") != ""
    v.page.evaluate(_MOVE, [lr.element_handle(), 0])
    assert "diverged" not in status.inner_text()
    assert status.evaluate("el => el.style.color") == ""
    assert not v.errors, v.errors


def colab_link(chapter: str) -> str:
    """The Colab address of a chapter, from the repository address written once in _config.yml."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo = config["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{repo}/blob/{config['repository']['branch']}/{chapter}.ipynb"


@pytest.mark.parametrize("chapter", chapters())
def test_colab_button_opens_this_chapter(visit, chapter):
    v = visit(f"{chapter}.html")
    links = v.page.locator('a[href^="https://colab.research.google.com"]')
    hrefs = [links.nth(k).get_attribute("href") for k in range(links.count())]
    assert colab_link(chapter) in hrefs, hrefs
    download = v.page.locator(f'a[href$="_sources/{chapter}.ipynb"]')
    assert download.count() > 0, f"{chapter}: no button to download the notebook"
    response = v.page.request.get(v.page.url.rsplit("/", 1)[0] + "/" + download.first.get_attribute("href"))
    assert response.ok and '"cells"' in response.text()
