"""The built website in headless Chromium, offline: every page loads without errors or requests
to other sites, every formula is rendered (by KaTeX, when the book was built) and readable as soon
as the page has loaded, an axe-core audit finds no serious accessibility problem in light or dark
mode, figures stay legible in dark mode, kernel-free figures respond to their controls (also from
the keyboard), and each chapter's Colab button opens that chapter's notebook."""
from __future__ import annotations

import fcntl
import functools
import http.server
import json
import re
import statistics
import threading
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_book import chapters, toc_files

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book")]

# axe-core, from the npm package that package.json pins (`make env` installs it with `npm ci`).
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
# Math must be readable within this long of the page's load event (the issue: "math appears at once").
MATH_BUDGET_MS = 500
MATH_LOADS = 3  # cold loads per chapter for the timing; the median is asserted
RESULTS = REPO / "benchmarks" / "results" / "site_math_ready.json"

# Added to every page before its own scripts. `window.__gradlabReady` resolves once the page has
# loaded and its math is readable: every .math element holds KaTeX's output, and every font the
# page uses has arrived (a forced layout first, so that each font in use has been asked for). It
# resolves with the Performance API's figures, in milliseconds from the start of the navigation;
# `ready` is null if that has not happened 30 s after the load event.
READY_INIT = """
window.__gradlabFontsDone = null;  // when the last of KaTeX's fonts arrived
document.fonts.addEventListener('loadingdone', (e) => {
  if (e.fontfaces.some((f) => /KaTeX/.test(f.family))) window.__gradlabFontsDone = performance.now();
});
window.__gradlabReady = new Promise((resolve) => {
  const math = () => [...document.querySelectorAll('.math')];
  const check = (loadSeen) => {
    void document.body.offsetHeight;
    document.fonts.ready.then(() => {
      const loading = [...document.fonts].some((f) => f.status === 'loading');
      const rendered = math().every((el) => el.querySelector('.katex'));
      const late = performance.now() - loadSeen > 30000;
      if ((!rendered || loading) && !late) { requestAnimationFrame(() => check(loadSeen)); return; }
      const nav = performance.getEntriesByType('navigation')[0];
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const katex = [...document.fonts].filter((f) => /KaTeX/.test(f.family));
      resolve({
        ready: rendered && !loading ? performance.now() : null, load: nav.loadEventStart, loadSeen,
        unrendered: math().filter((el) => !el.querySelector('.katex')).length,
        domContentLoaded: nav.domContentLoadedEventEnd, firstPaint: paint ? paint.startTime : null,
        fontsDone: window.__gradlabFontsDone,
        math: document.querySelectorAll('.math').length,
        fontsLoaded: katex.filter((f) => f.status === 'loaded').map((f) => `${f.family} ${f.style} ${f.weight}`),
        fontsFailed: katex.filter((f) => f.status === 'error').map((f) => `${f.family} ${f.style} ${f.weight}`),
      });
    });
  };
  addEventListener('load', () => check(performance.now()), {once: true});
});
"""
DARK_INIT = "localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');"


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


class Visit:
    """One page opened offline: requests to anything but the local server are refused and recorded."""

    def __init__(self, browser, base: str, path: str, *, dark: bool = False):
        self.context = browser.new_context()
        self.context.add_init_script(READY_INIT)
        if dark:  # pydata-sphinx-theme reads the colour mode from localStorage before it paints
            self.context.add_init_script(DARK_INIT)
        self.page = self.context.new_page()
        self.external: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", functools.partial(self._route, base))
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                     if msg.type == "error" else None)
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        self.response = self.page.goto(base + path, wait_until="load")

    def ready(self) -> dict:
        """Wait until the page has loaded and its math is readable; the timings (READY_INIT).
        A page that sends the browser on (index.html does) is followed to where it leads."""
        from playwright.sync_api import Error

        for _ in range(40):  # up to about 10 s: a redirect on a busy machine can take a while to start
            try:
                # A redirect stub (index.html's meta refresh) may report itself ready just before it
                # leaves: wait until the browser has left it, then for the page it leads to.
                if self.page.evaluate("() => !!document.querySelector('meta[http-equiv=\"refresh\" i]')"):
                    here = self.page.url
                    self.page.wait_for_url(lambda url: url != here, timeout=10_000)
                    self.page.wait_for_load_state("load")
                    continue
                return self.page.evaluate("() => window.__gradlabReady")
            except Error as exc:
                if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                    raise
                # the old page may still report "loaded" until the new one replaces it: give it time
                self.page.wait_for_timeout(250)
                self.page.wait_for_load_state("load")
        raise AssertionError(f"{self.page.url} kept navigating")

    def _route(self, base: str, route) -> None:
        url = route.request.url
        if url.startswith(base) or url.startswith("data:"):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None


def site_pages() -> list[str]:
    return ["index.html", *[f"{f}.html" for f in toc_files()], "genindex.html", "search.html"]


@pytest.fixture
def visit(browser, site):
    opened: list[Visit] = []

    def open_page(path: str, *, dark: bool = False) -> Visit:
        v = Visit(browser, site, path, dark=dark)
        opened.append(v)
        return v

    yield open_page
    for v in opened:
        v.close()


@pytest.mark.parametrize("path", site_pages())
def test_page_loads_offline_without_errors(visit, path):
    v = visit(path)
    assert v.response is not None and v.response.ok, f"{path}: HTTP {v.response and v.response.status}"
    v.ready()
    v.page.wait_for_load_state("networkidle")
    assert not v.external, f"{path} asked other sites for: {v.external}"
    assert not v.errors, f"{path}: {v.errors}"


# What the reader sees of each .math element: KaTeX's HTML (hidden from screen readers) beside
# its MathML (what a screen reader reads), and no error markup.
_MATH_REPORT = """() => [...document.querySelectorAll('.math')].map((el) => ({
  tag: el.tagName.toLowerCase(),
  html: !!el.querySelector('.katex .katex-html[aria-hidden="true"]'),
  mathml: !!el.querySelector('.katex .katex-mathml math annotation[encoding="application/x-tex"]'),
  display: !!el.querySelector(':scope > .katex-display'),
  error: !!el.querySelector('.katex-error'),
  text: el.textContent.slice(0, 60),
}))"""
# The article's text outside math, code and scripts: where raw TeX would show if left unrendered.
_PROSE = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('.math, pre, code, script, style').forEach((el) => el.remove());
  return main.textContent;
}"""
_RAW_TEX = re.compile(r"\$\$|\\[()\[\]]|\\begin\{|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_math_is_rendered(visit, chapter):
    """Every formula of the chapter (inline, display, amsmath) is KaTeX's HTML plus MathML, set in
    KaTeX's fonts; none is an error, none is left as raw TeX, and no script typesets math."""
    v = visit(f"{chapter}.html")
    timing = v.ready()
    math = v.page.evaluate(_MATH_REPORT)
    assert len(math) > 0, f"{chapter}: no math on the page"
    assert any(m["tag"] == "div" for m in math), f"{chapter}: no display math"
    broken = [m for m in math if m["error"] or not m["html"] or not m["mathml"]
              or (m["tag"] == "div") != m["display"]]
    assert not broken, f"{chapter}: formulas not rendered as KaTeX HTML + MathML: {broken[:5]}"
    assert v.page.locator(".katex-error").count() == 0, f"{chapter}: KaTeX error markup on the page"
    raw = sorted(set(_RAW_TEX.findall(v.page.evaluate(_PROSE))))
    assert not raw, f"{chapter}: raw TeX outside the rendered math: {raw[:10]}"
    # KaTeX's stylesheet is applied and its fonts came from the site.
    family = v.page.locator(".math .katex").first.evaluate("el => getComputedStyle(el).fontFamily")
    assert "KaTeX_Main" in family, family
    assert not timing["fontsFailed"], f"{chapter}: KaTeX fonts failed to load: {timing['fontsFailed']}"
    assert any("KaTeX_Main" in f for f in timing["fontsLoaded"]), timing["fontsLoaded"]
    assert v.page.evaluate("() => typeof window.MathJax") == "undefined", f"{chapter}: MathJax is loaded"
    assert not v.external, v.external
    assert not v.errors, v.errors


def _record(results: dict) -> Path:
    """Merge ``results`` into RESULTS (benchmarks/results/, ignored by git), under a lock."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data.update(results)
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    return RESULTS


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_math_is_readable_when_the_page_has_loaded(visit, chapter):
    """The math is readable within MATH_BUDGET_MS of the page's load event (median of MATH_LOADS
    cold loads), measured with the Performance API from the start of the navigation: the page
    has loaded, every formula is rendered and every font it uses has arrived. With KaTeX's output
    in the HTML nothing is left to do after the load event but wait for fonts (preloaded with the
    stylesheets); MathJax 2 typeset for seconds after it. Each figure is printed (`-s`) and
    written to benchmarks/results/site_math_ready.json."""
    runs = []
    for _ in range(MATH_LOADS):
        v = visit(f"{chapter}.html")
        t = v.ready()
        assert t["math"] > 0, f"{chapter}: no math on the page"
        assert t["ready"] is not None, (
            f"{chapter}: math not readable 30 s after the page loaded ({t['unrendered']} formulas not rendered)")
        runs.append({"ready_ms": round(t["ready"], 1), "load_event_ms": round(t["load"], 1),
                     "after_load_ms": round(t["ready"] - t["load"], 1),
                     "first_contentful_paint_ms": t["firstPaint"] and round(t["firstPaint"], 1),
                     # the math on the first screen: painted, in its fonts
                     "first_screen_ms": round(max(t["firstPaint"] or 0, t["fontsDone"] or 0), 1),
                     "dom_content_loaded_ms": round(t["domContentLoaded"], 1), "formulas": t["math"]})
        v.close()
    after_load = statistics.median(r["after_load_ms"] for r in runs)
    ready = statistics.median(r["ready_ms"] for r in runs)
    load = statistics.median(r["load_event_ms"] for r in runs)
    first_screen = statistics.median(r["first_screen_ms"] for r in runs)
    path = _record({chapter: {"budget_after_load_ms": MATH_BUDGET_MS, "median_ready_ms": ready,
                              "median_load_event_ms": load, "median_after_load_ms": after_load,
                              "median_first_screen_ms": first_screen, "runs": runs}})
    print(f"\n{chapter}: all math readable {ready:.0f} ms after navigation start; page load event at "
          f"{load:.0f} ms, so {after_load:.0f} ms after it (budget {MATH_BUDGET_MS} ms); first screen's "
          f"math painted in its fonts at {first_screen:.0f} ms (medians of {MATH_LOADS} loads; "
          f"{runs[0]['formulas']} formulas) -> {path}")
    assert after_load < MATH_BUDGET_MS, (
        f"{chapter}: math readable {after_load:.0f} ms after the page loaded (budget {MATH_BUDGET_MS} ms): {runs}")


def _axe_violations(v: Visit, serious_only: bool = True, context=None, rules: list[str] | None = None) -> list[dict]:
    """axe-core's violations on the page (or within the element ``context``; only ``rules`` if given)."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing ({AXE}): run `make env` (npm ci) in the repository")
    if not v.page.evaluate("() => !!window.axe"):
        v.page.add_script_tag(path=str(AXE))  # inlined into the page: no request
    violations = v.page.evaluate("""async ([context, rules]) => {
      const options = {resultTypes: ['violations']};
      if (rules) options.runOnly = {type: 'rule', values: rules};
      const result = await axe.run(context || document, options);
      return result.violations.map((r) => ({id: r.id, impact: r.impact, help: r.help,
        nodes: r.nodes.map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\\s+/g, ' '))}));
    }""", [context, rules])
    return [r for r in violations if not serious_only or r["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("path", site_pages())
def test_axe_finds_no_serious_accessibility_problem(visit, path, mode):
    """axe-core (run offline from node_modules) on every page of the site, in the theme's light and
    dark mode: no violation of impact serious or critical."""
    v = visit(path, dark=mode == "dark")
    v.ready()
    theme = v.page.evaluate("() => document.documentElement.dataset.theme")
    assert theme == mode, f"{path}: the page is in {theme!r} mode, not {mode!r}"
    problems = _axe_violations(v)
    report = "\n".join(f"[{r['impact']}] {r['id']}: {r['help']}\n    " + "\n    ".join(r["nodes"][:6])
                       for r in problems)
    assert not problems, f"{path} ({mode} mode):\n{report}"
    assert not v.errors, v.errors


# Each figure image of the page (static matplotlib PNGs in cell outputs, kernel-free frames): how
# it is shown (its background, filters on it or any ancestor, opacity) and the colour of its
# corners as drawn (the PNG's own background).
_FIGURES = """async () => {
  const out = [];
  for (const img of document.querySelectorAll('.cell_output img, img.gl-frame')) {
    await img.decode().catch(() => null);
    const filters = [];
    for (let el = img; el; el = el.parentElement) {
      const f = getComputedStyle(el).filter;
      if (f && f !== 'none') filters.push(f);
    }
    const w = img.naturalWidth, h = img.naturalHeight;
    let corners = [];
    if (w && h) {
      const canvas = document.createElement('canvas');
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      corners = [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]].map(([x, y]) => [...ctx.getImageData(x, y, 1, 1).data]);
    }
    const style = getComputedStyle(img);
    out.push({src: (img.getAttribute('src') || '').slice(0, 60), background: style.backgroundColor,
              opacity: +style.opacity, filters, corners, width: img.getBoundingClientRect().width});
  }
  return out;
}"""


def _rgba(css: str) -> tuple[float, float, float, float]:
    parts = [float(x) for x in re.findall(r"[\d.]+", css)]
    return (*parts[:3], parts[3] if len(parts) > 3 else 1.0)


def _luminance(r: float, g: float, b: float) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _harmful(filter_css: str) -> bool:
    """Whether a CSS filter inverts, dims, blurs or washes out what it is applied to."""
    for name, arg in re.findall(r"([a-z-]+)\(([^)]*)\)", filter_css):
        value = float(re.sub(r"[^\d.]", "", arg) or 0)
        value = value / 100 if "%" in arg else value
        if name == "invert" and value > 0.05:
            return True
        if name in ("brightness", "contrast", "opacity") and not 0.95 <= value <= 1.05:
            return True
        if name == "blur" and value > 0:
            return True
    return False


@pytest.mark.parametrize("chapter", chapters())
def test_figures_stay_legible_in_dark_mode(visit, chapter):
    """In dark mode every figure image is shown on an opaque light background, neither inverted
    nor dimmed nor washed out, and is itself an opaque light-background picture."""
    v = visit(f"{chapter}.html", dark=True)
    v.ready()
    assert v.page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    figures = v.page.evaluate(_FIGURES)
    assert len(figures) > 1, f"{chapter}: no figure images"
    assert v.page.locator("img.gl-frame").count() > 0, f"{chapter}: no kernel-free figure"
    for f in figures:
        r, g, b, a = _rgba(f["background"])
        assert a == 1 and _luminance(r, g, b) > 0.85, f"{chapter}: figure {f['src']} not on an opaque light background: {f}"
        assert not any(_harmful(x) for x in f["filters"]), f"{chapter}: figure {f['src']} filtered in dark mode: {f}"
        assert f["opacity"] > 0.95, f
        assert f["corners"] and all(px[3] == 255 and min(px[:3]) >= 230 for px in f["corners"]), (
            f"{chapter}: figure {f['src']} is not an opaque picture with a light background: {f}")
    assert not v.errors, v.errors


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


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_website_explorer_reports_divergence_and_recovers(visit, mode):
    """Chapter 1's explorer pushed to its largest learning rate says "diverged at step k" on the
    static site too, in a warning colour that is readable where it is shown (axe-core's contrast
    check, in light and dark mode), and a small learning rate clears the warning."""
    v = visit("notebooks/01_gradient_descent.html", dark=mode == "dark")
    v.ready()
    figure = v.page.locator("div.gradlab-kf").filter(has_text="Gradient descent on a loss surface").first
    lr = figure.locator("input[type=range]").first
    status = figure.locator(".gl-status")
    colour = "el => getComputedStyle(el).color"
    v.page.evaluate(_MOVE, [lr.element_handle(), 0])
    calm = status.evaluate(colour)
    v.page.evaluate(_MOVE, [lr.element_handle(), int(lr.evaluate("el => el.max"))])
    assert re.search(r"diverged at step \d+", status.inner_text()), status.inner_text()
    assert status.evaluate(colour) != calm, "the divergence is not shown in a warning colour"
    contrast = _axe_violations(v, serious_only=False, context=status.element_handle(), rules=["color-contrast"])
    assert not contrast, f"{mode} mode: the divergence warning is hard to read: {contrast}"
    v.page.evaluate(_MOVE, [lr.element_handle(), 0])
    assert "diverged" not in status.inner_text()
    assert status.evaluate(colour) == calm
    assert not v.errors, v.errors


_FOCUSED_RANGE = "() => !!(document.activeElement && document.activeElement.matches('div.gradlab-kf input[type=range]'))"
_FOCUSED_STATE = """() => {
  const el = document.activeElement, root = el.closest('div.gradlab-kf');
  return {value: +el.value, max: +el.max, frame: root.dataset.glFrame,
          src: root.querySelector('img.gl-frame').getAttribute('src')};
}"""
MAX_TABS = 600


@pytest.mark.parametrize("chapter", chapters())
def test_kernel_free_figures_work_from_the_keyboard(visit, chapter):
    """Every control of a kernel-free figure has an accessible name; pressing Tab from the top of
    the page reaches a slider, and an arrow key moves it to another frame."""
    v = visit(f"{chapter}.html")
    v.ready()
    unnamed = v.page.evaluate("""() => [...document.querySelectorAll('div.gradlab-kf [data-gl-axis]')]
      .filter((el) => !(el.getAttribute('aria-label') || [...(el.labels || [])].some((l) => l.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 80))""")
    assert not unnamed, f"{chapter}: controls without an accessible name: {unnamed}"
    for presses in range(1, MAX_TABS + 1):
        v.page.keyboard.press("Tab")
        if v.page.evaluate(_FOCUSED_RANGE):
            break
    else:
        pytest.fail(f"{chapter}: {MAX_TABS} presses of Tab never reached a kernel-free figure's slider")
    before = v.page.evaluate(_FOCUSED_STATE)
    key = "ArrowRight" if before["value"] < before["max"] else "ArrowLeft"
    v.page.keyboard.press(key)
    after = v.page.evaluate(_FOCUSED_STATE)
    assert after["value"] != before["value"], f"{chapter}: {key} did not move the slider ({presses} Tabs in)"
    assert after["frame"] != before["frame"], f"{chapter}: {key} moved the slider but not the frame"
    assert v.page.evaluate(_FOCUSED_RANGE), "the slider lost the focus"
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
