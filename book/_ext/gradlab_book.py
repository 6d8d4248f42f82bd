"""The book's own Sphinx extension: kernel-free figures and a site that needs no network.

- Sets ``GRADLAB_STATIC=1`` before any notebook is executed, so every ``Experiment.show()``
  renders as a kernel-free figure (frames precomputed over its controls' grids).
- Serves MathJax 2.7 from the site itself: after an HTML build it copies the MathJax that ships
  inside the PyPI package ``jupyter_server_mathjax`` to ``_static/<folder of mathjax_path>``.
  That copy has the HTML-CSS output with STIX-Web fonts (no CommonHTML), hence the
  ``TeX-AMS-MML_HTMLorMML-full`` configuration in ``_config.yml``.
- Drops the scripts of sphinx-thebe (which jupyter-book always loads): the book has no live-code
  button, and thebe's loader names a CDN address. Every page then loads only files of the site.
"""
from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

# Parts of the MathJax tree the site never asks for: the SVG output, and what only the math menu
# loads (its other languages, its accessibility explorer); _config.yml switches the menu off.
_SKIP = ("jax/output/SVG", "localization", "extensions/a11y")
_KEEP = ("localization/en",)


def mathjax_source() -> Path:
    """The MathJax 2.7 folder inside the installed ``jupyter_server_mathjax`` package."""
    import jupyter_server_mathjax

    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise ExtensionError(f"MathJax.js not found in {folder}: is jupyter-server-mathjax installed?")
    return folder


def _ignore(source: Path):
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(source).as_posix()
        skipped = set()
        for name in names:
            path = posixpath.normpath(posixpath.join(rel, name))
            kept = any(path == k or k.startswith(path + "/") or path.startswith(k + "/") for k in _KEEP)
            if not kept and any(path == s or path.startswith(s + "/") for s in _SKIP):
                skipped.add(name)
        return skipped

    return ignore


def local_mathjax_folder(mathjax_path: str) -> str | None:
    """The folder under ``_static`` that ``mathjax_path`` points into, or None for a URL."""
    path = mathjax_path.split("?", 1)[0]
    if "://" in path or path.startswith("/"):
        return None
    return posixpath.dirname(path)


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """After a successful HTML build, put MathJax where ``mathjax_path`` says it is."""
    if exception is not None or app.builder.format != "html":
        return
    folder = local_mathjax_folder(app.config.mathjax_path)
    if not folder:
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / folder
    if (target / "MathJax.js").is_file():
        return  # an incremental build already has it
    shutil.copytree(source, target, ignore=_ignore(source), dirs_exist_ok=True)
    logger.info(f"gradlab_book: MathJax copied from {source} to {target}")


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
    app.connect("html-page-context", drop_thebe, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
