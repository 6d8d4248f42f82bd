"""The book's own Sphinx extension: kernel-free figures and a site that needs no network.

- Sets ``GRADLAB_STATIC=1`` before any notebook is executed, so every ``Experiment.show()``
  renders as a kernel-free figure (frames precomputed over its controls' grids).
- Renders the math when the book is built, with KaTeX (``gradlab_math``, beside this file): the
  pages carry finished HTML and MathML, and KaTeX's stylesheet and fonts are served from
  ``_static/katex``. No script typesets math in the reader's browser.
- Serves ``static/gradlab-book.css`` and ``static/gradlab-book.js`` (beside this file) on every
  page: in the theme's dark mode, figure images stay unfiltered on a white card and kernel-free
  figures sit on the page in the theme's colours (not on its light output card); a display
  formula wider than the column scrolls (and then takes a tab stop) instead of overflowing.
- Accessibility fixes that an axe-core audit of the site asked for (tests/test_site.py):
  ``templates/`` overrides two of the theme's buttons whose accessible names left out what they
  show, and a bibliography's entries are list items of its list (docutils gives them the
  deprecated role ``doc-biblioentry``, which a ``role="list"`` may not contain).
- Drops the scripts of sphinx-thebe (which jupyter-book always loads): the book has no live-code
  button, and thebe's loader names a CDN address. Every page then loads only files of the site.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

STATIC = Path(__file__).with_name("static")
TEMPLATES = Path(__file__).with_name("templates")
STYLESHEET = "gradlab-book.css"
SCRIPT = "gradlab-book.js"


def serve_static(app: Sphinx, config: Config) -> None:
    """Add this extension's ``static`` folder to the site's ``_static``, link its stylesheet and
    script from every page, and put its ``templates`` before the theme's."""
    for path in (STATIC / STYLESHEET, STATIC / SCRIPT, TEMPLATES):
        if not path.exists():
            raise ExtensionError(f"gradlab_book: {path} is missing (copy book/_ext whole)")
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    config.templates_path = [str(TEMPLATES), *config.templates_path]
    app.add_css_file(STYLESHEET, priority=900)
    app.add_js_file(SCRIPT, loading_method="defer")


def visit_citation(self, node: nodes.citation) -> None:
    """docutils' citation, as an entry (``role="listitem"``) of the ``role="list"`` around it."""
    type(self).visit_citation(self, node)
    self.body[-1] = self.body[-1].replace('role="doc-biblioentry"', 'role="listitem"')


def depart_citation(self, node: nodes.citation) -> None:
    type(self).depart_citation(self, node)


def _is_thebe(asset) -> bool:
    name = os.fspath(getattr(asset, "filename", "") or "")
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return "thebe" in posixpath.basename(name) or "THEBE_JS_URL" in body


def drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Leave sphinx-thebe's script and stylesheet out of every page."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def setup(app: Sphinx) -> dict:
    """Register the extension; kernel-free figures are switched on for the notebooks executed next."""
    os.environ["GRADLAB_STATIC"] = "1"
    app.setup_extension("gradlab_math")
    app.connect("config-inited", serve_static)
    app.add_node(nodes.citation, override=True, html=(visit_citation, depart_citation))
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"version": "0.2", "parallel_read_safe": True, "parallel_write_safe": True}
