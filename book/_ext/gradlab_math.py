"""Math rendered when the book is built: KaTeX turns every formula into HTML and MathML.

The website then shows its math as soon as the page and KaTeX's fonts have loaded: no script
typesets anything in the reader's browser, and a screen reader reads the MathML that KaTeX puts
beside each formula (``output: htmlAndMathml``).

- One Node.js process per build (``gradlab_katex.js`` beside this file) runs KaTeX from the
  npm package ``katex`` that ``package.json`` pins and ``make env`` installs (``npm ci``) into
  ``node_modules``. Each page's formulas go to it as one batch, when the page's doctree is
  resolved; the HTML writer then takes the rendered formulas from a cache.
- A formula KaTeX cannot parse stops the build with an error that names the page, the line and
  KaTeX's message; a construct that is not standard LaTeX (KaTeX's strict mode) is a Sphinx
  warning, so the tests' ``-W`` build fails on it too.
- KaTeX's stylesheet and fonts (WOFF2 only: every browser the theme supports reads them) are
  copied to ``_static/katex/`` and linked from the pages that have math; each such page
  preloads the fonts its formulas are set in, so they arrive with the stylesheets.
- Display math keeps Sphinx's conventions: equation numbers and their permalinks come from
  Sphinx (``(1)`` on the right), blank-line separated equations are stacked, and a numbered
  amsmath environment is rendered starred, since Sphinx numbers it.

Settings (``sphinx: config:`` in ``_config.yml``): ``html_math_renderer: katex`` selects this
renderer; ``katex_options`` (a dict) is passed to KaTeX, e.g. ``{macros: {"\\\\R": "\\\\mathbb{R}"}}``;
``katex_node`` names the Node.js program (default: ``node`` on the PATH).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number
from sphinx.util.nodes import get_node_line, get_node_source

logger = logging.getLogger(__name__)

RENDERER = "katex"
WORKER = Path(__file__).with_name("gradlab_katex.js")
STATIC = "katex"  # the folder under _static
STYLESHEET = f"{STATIC}/katex.min.css"

_NUMBERED_ENV = re.compile(
    r"^(\s*\\begin\{)(equation|align|gather|alignat|flalign|multline|eqnarray)(\}.*\\end\{)\2(\}\s*)$", re.S)


class KatexError(ExtensionError):
    """KaTeX could not render a formula, or could not be run at all."""


# --- Which TeX each math node stands for -----------------------------------------------------------

def node_tex(node: nodes.Element) -> tuple[str, bool]:
    """The TeX KaTeX renders for ``node`` and whether it is display math.

    Mirrors ``sphinx.ext.mathjax`` (and myst-parser's amsmath override of it), so a page reads
    as it did with MathJax: blank-line separated equations are stacked in ``aligned``, an
    equation with ``\\\\`` breaks is a ``split``, and a ``nowrap`` block goes as it is.
    """
    text = node.astext()
    if isinstance(node, nodes.math):
        return text, False
    if node.get("nowrap"):
        if "amsmath" in node.get("classes", ()):
            # Sphinx numbers a numbered amsmath environment itself: KaTeX must not number it again.
            text = _NUMBERED_ENV.sub(r"\1\2*\3\2*\4", text)
        return text, True
    parts = [part for part in text.split("\n\n") if part.strip()]
    parts = [rf"\begin{{split}}{part}\end{{split}}" if r"\\" in part else part for part in parts]
    if len(parts) > 1:
        return r"\begin{aligned}" + r"\\".join(parts) + r"\end{aligned}", True
    return (parts[0] if parts else text), True


def _math_nodes(doctree: nodes.Node) -> Iterable[nodes.Element]:
    yield from doctree.findall(lambda n: isinstance(n, (nodes.math, nodes.math_block)))


def _where(node: nodes.Node) -> str:
    source = get_node_source(node) or "?"
    line = get_node_line(node)
    return f"{source}:{line}" if line else source


# --- The Node.js worker ----------------------------------------------------------------------------

def find_katex(*starts: Path) -> Path:
    """The ``node_modules/katex`` folder nearest to any of ``starts`` (or their parents), else
    the ``katex`` in a folder of ``NODE_PATH`` (as Node.js itself would look)."""
    for start in starts:
        for folder in [start, *start.parents]:
            candidate = folder / "node_modules" / "katex"
            if (candidate / "package.json").is_file():
                return candidate
    for folder in filter(None, os.environ.get("NODE_PATH", "").split(os.pathsep)):
        candidate = Path(folder) / "katex"
        if (candidate / "package.json").is_file():
            return candidate
    raise KatexError(
        "KaTeX is not installed: the book renders its math with the npm package `katex`. "
        "Run `make env` (it runs `npm ci` in the repository, which needs Node.js 20 or newer), "
        "or `npm ci` by hand in the folder that holds package.json.")


class KatexWorker:
    """One ``node gradlab_katex.js`` process; ``render`` sends it a batch and reads the answers."""

    def __init__(self, node: str, katex_dir: Path, options: dict) -> None:
        program = shutil.which(node)
        if program is None:
            raise KatexError(
                f"Node.js ({node!r}) is not on the PATH: the book renders its math with KaTeX at "
                "build time, which needs Node.js 20 or newer (Debian: `apt-get install nodejs npm`).")
        self.options = options
        self.pid = os.getpid()
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.proc = subprocess.Popen(
            [program, str(WORKER), str(katex_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, encoding="utf-8", bufsize=1)
        hello = self._read()
        self.version = hello.get("ready") if isinstance(hello, dict) else None
        if not self.version:
            raise KatexError(f"the KaTeX worker did not start: {hello!r}")

    def _read(self) -> Any:
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise KatexError(f"the KaTeX worker (node {WORKER}) stopped:\n{self._stderr.read()[-3000:]}")
        return json.loads(line)

    def render(self, items: list[tuple[str, bool]]) -> list[dict]:
        request = {"options": self.options, "items": [{"tex": t, "display": d} for t, d in items]}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if isinstance(answer, dict):
            raise KatexError(f"the KaTeX worker failed: {answer.get('fatal', answer)}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._stderr.close()


class KatexRenderer:
    """The build's formulas, rendered in batches by one worker and kept by (TeX, display)."""

    def __init__(self, app: Sphinx) -> None:
        self.app = app
        self.cache: dict[tuple[str, bool], str] = {}
        self._worker: KatexWorker | None = None
        self.katex_dir: Path | None = None

    @property
    def worker(self) -> KatexWorker:
        if self._worker is None or self._worker.pid != os.getpid():  # a fresh one in a forked writer
            self.katex_dir = find_katex(Path(self.app.srcdir), Path(self.app.confdir), Path(__file__).parent)
            self._worker = KatexWorker(self.app.config.katex_node, self.katex_dir,
                                       dict(self.app.config.katex_options or {}))
            logger.info(f"gradlab_math: KaTeX {self._worker.version} from {self.katex_dir}")
        return self._worker

    def prepare(self, math_nodes: Iterable[nodes.Element]) -> None:
        """Render, as one batch, every formula of ``math_nodes`` that is not rendered yet."""
        wanted: dict[tuple[str, bool], nodes.Element] = {}
        for node in math_nodes:
            key = node_tex(node)
            if key not in self.cache and key not in wanted:
                wanted[key] = node
        if not wanted:
            return
        answers = self.worker.render(list(wanted))
        failures = []
        for (key, node), answer in zip(wanted.items(), answers):
            for warning in answer.get("warnings", ()):
                logger.warning(f"KaTeX: {warning} in ${key[0]}$", location=node, type="katex", subtype="strict")
            if "error" in answer:
                failures.append(f"{_where(node)}: {answer['error']}\n    in the formula: {key[0]}")
            else:
                self.cache[key] = answer["html"]
        if failures:
            raise KatexError("KaTeX cannot render these formulas (fix the TeX; KaTeX's supported "
                             "functions: https://katex.org/docs/supported):\n" + "\n".join(failures))

    def html(self, node: nodes.Element) -> str:
        key = node_tex(node)
        if key not in self.cache:
            self.prepare([node])  # math the page's doctree did not hold (e.g. a title in the toctree)
        return self.cache[key]

    def close(self) -> None:
        if self._worker is not None and self._worker.pid == os.getpid():
            self._worker.close()
        self._worker = None


def _renderer(app: Sphinx) -> KatexRenderer:
    renderer = getattr(app, "_gradlab_katex", None)
    if renderer is None:
        renderer = app._gradlab_katex = KatexRenderer(app)
    return renderer


# --- Sphinx hooks ----------------------------------------------------------------------------------

def _active(app: Sphinx) -> bool:
    return app.builder.format == "html" and getattr(app.builder, "math_renderer_name", None) == RENDERER


def prepare_page(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Render the page's formulas in one batch before the page is written."""
    if _active(app):
        _renderer(app).prepare(_math_nodes(doctree))


def html_visit_math(self, node: nodes.math) -> None:
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate nohighlight"))
    self.body.append(_renderer(self.builder.app).html(node) + "</span>")
    raise nodes.SkipNode


def html_visit_displaymath(self, node: nodes.math_block) -> None:
    classes = "math notranslate nohighlight" + (" amsmath" if "amsmath" in node.get("classes", ()) else "")
    self.body.append(self.starttag(node, "div", CLASS=classes))
    if node.get("number"):
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, _("Link to this equation"))
        self.body.append("</span>")
    self.body.append(_renderer(self.builder.app).html(node))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def link_stylesheet(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """On each page that has math, link KaTeX's stylesheet (as sphinx.ext.mathjax does its script)
    and preload the fonts its formulas use, so they arrive with the stylesheets rather than
    after the first layout."""
    if not _active(app):
        return
    domain = app.env.get_domain("math")
    if not (app.registry.html_assets_policy == "always" or domain.has_equations(pagename)):
        return
    app.builder.add_css_file(STYLESHEET, priority=400)
    fonts = fonts_used(context.get("body", ""), _font_rules(app))
    if fonts and "pathto" in context:
        links = "".join(
            f'\n<link rel="preload" href="{context["pathto"](f"_static/{STATIC}/fonts/{font}.woff2", 1)}"'
            ' as="font" type="font/woff2" crossorigin="anonymous" />' for font in fonts)
        context["metatags"] = context.get("metatags", "") + links


_FONT_FILE = {("400", "normal"): "Regular", ("700", "normal"): "Bold",
              ("400", "italic"): "Italic", ("700", "italic"): "BoldItalic"}


def font_rules(css: str) -> list[tuple[frozenset[str], str]]:
    """(classes, font file) for each rule of KaTeX's stylesheet of the form ``.katex .a.b {font...}``."""
    rules = [(frozenset(), "KaTeX_Main-Regular")]  # .katex itself
    css = re.sub(r"@font-face\{[^}]*\}", "", css)
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        family = re.search(r"font-family:\s*(KaTeX_\w+)", body)
        if not family:
            continue
        style = "italic" if re.search(r"font-style:\s*italic", body) else "normal"
        weight = "700" if re.search(r"font-weight:\s*(700|bold)", body) else "400"
        name = f"{family.group(1)}-{_FONT_FILE[weight, style]}"
        for selector in selectors.split(","):
            match = re.fullmatch(r"\s*\.katex\s+((?:\.[\w-]+)+)\s*", selector)
            if match:
                rules.append((frozenset(match.group(1).strip(".").split(".")), name))
    return rules


def _font_rules(app: Sphinx) -> list[tuple[frozenset[str], str]]:
    rules = getattr(app, "_gradlab_katex_fonts", None)
    if rules is None:
        renderer = _renderer(app)
        katex_dir = renderer.katex_dir or find_katex(Path(app.srcdir), Path(app.confdir), Path(__file__).parent)
        rules = font_rules((katex_dir / "dist" / "katex.min.css").read_text(encoding="utf-8"))
        rules = [(classes, font) for classes, font in rules
                 if (katex_dir / "dist" / "fonts" / f"{font}.woff2").is_file()]
        app._gradlab_katex_fonts = rules
    return rules


def fonts_used(body: str, rules: list[tuple[frozenset[str], str]]) -> list[str]:
    """The KaTeX font files that the formulas in ``body`` (a page's HTML) are set in."""
    if 'class="katex"' not in body:
        return []
    elements = {frozenset(c.split()) for c in re.findall(r'class="([^"]*)"', body)}
    used = {name for classes, name in rules if not classes or any(classes <= e for e in elements)}
    return sorted(used)


def katex_stylesheet(css: str) -> str:
    """KaTeX's stylesheet with WOFF2 fonts only (WOFF and TrueType copies are never fetched)."""
    pattern = re.compile(r"src:\s*(url\([^)]*\.woff2\)\s*format\([\"']woff2[\"']\))(?:\s*,\s*url\([^)]*\)\s*format\([^)]*\))*")
    out, count = pattern.subn(r"src:\1", css)
    if count != css.count("@font-face"):
        raise KatexError(f"KaTeX's stylesheet changed shape: {count} of {css.count('@font-face')} fonts rewritten")
    return out


def copy_assets(app: Sphinx, exception: Exception | None) -> None:
    """After an HTML build with math, put KaTeX's stylesheet and fonts under ``_static/katex``."""
    renderer = getattr(app, "_gradlab_katex", None)
    try:
        if exception is not None or not _active(app):
            return
        domain = app.env.get_domain("math")
        if not any(domain.has_equations(doc) for doc in app.env.found_docs) and \
                app.registry.html_assets_policy != "always":
            return
        katex_dir = (renderer and renderer.katex_dir) or find_katex(
            Path(app.srcdir), Path(app.confdir), Path(__file__).parent)
        dist = katex_dir / "dist"
        target = Path(app.outdir) / "_static" / STATIC
        (target / "fonts").mkdir(parents=True, exist_ok=True)
        (target / "katex.min.css").write_text(
            katex_stylesheet((dist / "katex.min.css").read_text(encoding="utf-8")), encoding="utf-8")
        for font in sorted((dist / "fonts").glob("*.woff2")):
            shutil.copyfile(font, target / "fonts" / font.name)
        for name in ("LICENSE",):
            if (katex_dir / name).is_file():
                shutil.copyfile(katex_dir / name, target / name)
    finally:
        if renderer is not None:
            renderer.close()


def setup(app: Sphinx) -> dict:
    app.add_html_math_renderer(RENDERER, (html_visit_math, None), (html_visit_displaymath, None))
    app.add_config_value("katex_options", {}, "html", [dict])
    app.add_config_value("katex_node", "node", "env", [str])
    app.connect("doctree-resolved", prepare_page)
    app.connect("html-page-context", link_stylesheet)
    app.connect("build-finished", copy_assets)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
