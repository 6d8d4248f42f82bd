"""The website: it builds in fast mode with warnings as errors, every page of the table of
contents is there and small enough, and a notebook that raises fails the build."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO, build_book

pytestmark = [pytest.mark.book, pytest.mark.xdist_group("book")]

MAX_PAGE_BYTES = 5_000_000
CHAPTER_DIR = "notebooks"


def toc_files(root: Path = REPO) -> list[str]:
    """Every document named in _toc.yml (root first), without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapters(root: Path = REPO) -> list[str]:
    return [f for f in toc_files(root) if f.startswith(CHAPTER_DIR + "/")]


def test_the_book_builds_in_fast_mode_without_warnings(built_book):
    tail = "\n".join(built_book.log.splitlines()[-60:])
    assert built_book.returncode == 0, f"jupyter-book build failed:\n{tail}"
    assert (built_book.html / "index.html").is_file()
    warnings = [line for line in built_book.log.splitlines() if re.search(r"\bWARNING\b", line)
                and "Kernel is running over TCP" not in line]
    assert not warnings, "\n".join(warnings)


def test_every_toc_page_is_in_the_site(built_book):
    assert built_book.returncode == 0
    missing = [f for f in toc_files() if not (built_book.html / f"{f}.html").is_file()]
    assert not missing, f"pages in _toc.yml but not in the site: {missing}"


def test_chapters_are_in_file_name_order():
    """Chapter numbers on the site follow the notebooks' NN_ prefixes."""
    names = chapters()
    assert {"notebooks/01_gradient_descent", "notebooks/02_backpropagation"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_page_is_small_and_shows_figures(built_book, chapter):
    assert built_book.returncode == 0
    page = built_book.html / f"{chapter}.html"
    html = page.read_text(encoding="utf-8")
    size = page.stat().st_size
    assert size < MAX_PAGE_BYTES, f"{chapter}: {size / 1e6:.1f} MB (budget {MAX_PAGE_BYTES / 1e6:.0f} MB)"
    assert re.search(r'<img[^>]+src="[^"]+\.png"', html), f"{chapter}: no plain figure on the page"
    assert 'class="gradlab-kf"' in html, f"{chapter}: no kernel-free interactive figure on the page"
    assert "Traceback (most recent call last)" not in html
    assert "output stderr" not in html, f"{chapter}: a cell printed to stderr (a warning?) and it shows on the page"


KF_DIV = re.compile(r'<div class="gradlab-kf".*?class="gl-data">(.*?)</script>', re.S)
MAX_FIGURE_BYTES = 2_500_000


@pytest.mark.parametrize("chapter", chapters())
def test_every_precomputed_setting_of_every_figure_ran(built_book, chapter):
    """The build computes each kernel-free figure over its whole grid (tests/test_widgets.py checks the
    figure's structure on two values per control): a setting that failed would show the reader a frame
    saying so, and the build would not notice. Each figure also stays well under the page budget."""
    import json

    assert built_book.returncode == 0
    html = (built_book.html / f"{chapter}.html").read_text(encoding="utf-8")
    figures = list(KF_DIV.finditer(html))
    assert figures, f"{chapter}: no kernel-free figure"
    for i, match in enumerate(figures):
        assert len(match.group(0)) < MAX_FIGURE_BYTES, f"{chapter}: figure {i} is {len(match.group(0)) / 1e6:.1f} MB"
        payload = json.loads(match.group(1))
        failed = [m for m in payload["messages"] if m.startswith("Could not run")]
        assert not failed, f"{chapter}: figure {i} has {len(failed)} failed settings, first: {failed[0]}"
        assert len(payload["index"]) == len(payload["messages"]) >= 2


def test_the_setup_cell_is_hidden_on_the_site(built_book):
    assert built_book.returncode == 0
    for chapter in chapters():
        html = (built_book.html / f"{chapter}.html").read_text(encoding="utf-8")
        assert "google.colab" not in html, f"{chapter}: the setup cell shows on the page"


def test_pages_load_nothing_from_other_sites(built_book):
    """A static look at every page (the browser test checks the requests themselves)."""
    assert built_book.returncode == 0
    pattern = re.compile(r'<(?:script|img|iframe|source|link[^>]*rel="(?:stylesheet|preload|icon)")[^>]*'
                         r'\s(?:src|href)="((?:https?:)?//[^"]+)"')
    found = {}
    for page in built_book.html.rglob("*.html"):
        hits = pattern.findall(page.read_text(encoding="utf-8"))
        if hits:
            found[str(page.relative_to(built_book.html))] = hits
    assert not found, f"external resources: {found}"
    assert (built_book.html / "_static" / "katex" / "katex.min.css").is_file()


def _tiny_book(root: Path, notebook_source: str) -> None:
    """A one-chapter book with the real _config.yml and extension around one notebook."""
    shutil.copytree(REPO / "book" / "_ext", root / "book" / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    shutil.copy(REPO / "book" / "references.bib", root / "book" / "references.bib")
    (root / "book" / "intro.md").write_text("# A tiny book\n\nOne page and one chapter.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: chapter\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell(notebook_source)]
    nbformat.write(nb, root / "chapter.ipynb")


def test_a_notebook_that_raises_fails_the_build(tmp_path):
    """Even without -W (as `make book` builds), an exception in a notebook is a failed build."""
    _tiny_book(tmp_path / "src", "raise RuntimeError('this chapter is broken')")
    book = build_book(tmp_path / "src", tmp_path / "out", strict=False)
    assert book.returncode != 0, book.log[-3000:]
    assert "this chapter is broken" in book.log


def test_the_tiny_book_builds_when_nothing_raises(tmp_path):
    """The control for the test above: the same tiny book, without the exception, builds."""
    _tiny_book(tmp_path / "src", "print(1 + 1)")
    book = build_book(tmp_path / "src", tmp_path / "out", strict=False)
    assert book.returncode == 0, book.log[-3000:]
