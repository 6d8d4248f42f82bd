"""What every chapter notebook must be before it is committed: in the table of contents, without
outputs, opened by the guarded setup cell, with one title, citations that resolve and no helpers."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PAGES = sorted((REPO / "book").glob("*.md"))
BOOTSTRAP = '''# Setup: installs gradlab only inside Colab (never touching Colab's torch, matplotlib or ipywidgets), then picks the device and seeds.
import sys
if "google.colab" in sys.modules:
    %pip install -q --no-deps "gradlab @ git+{url}"
import gradlab
device = gradlab.setup(seed=0)'''
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
# A notebook cites by linking to the work: [Author (Year)](address) or ([Author, Year](address); ...).
CITE_LINK = re.compile(r"\[([^\[\]]+?(?: \(\d{4}\)|, \d{4}))\]\(([^()\s]+(?:\([^()\s]*\)[^()\s]*)*)\)")
BIB_KEY = re.compile(r"^\s*@\s*(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)
FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$", re.M | re.S)


def config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def toc_files() -> set[str]:
    text = (REPO / "_toc.yml").read_text()
    return set(re.findall(r"(?:file|root):\s*(\S+)", text))


def bib_keys() -> list[str]:
    text = (REPO / "book" / "references.bib").read_text(encoding="utf-8")
    return [key for kind, key in BIB_KEY.findall(text) if kind.lower() not in {"comment", "string", "preamble"}]


def bib_addresses() -> set[str]:
    """Every address a chapter may cite by: each entry's DOI (via doi.org), URL and arXiv eprint."""
    from pybtex.database import parse_file

    found = set()
    for entry in parse_file(str(REPO / "book" / "references.bib")).entries.values():
        f = {k.lower(): v.strip() for k, v in entry.fields.items()}
        found |= {f"https://doi.org/{f['doi']}".lower()} if "doi" in f else set()
        found |= {f["url"]} if "url" in f else set()
        found |= {f"https://arxiv.org/abs/{f['eprint']}"} if "eprint" in f else set()
    return found


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


ids = lambda p: p.name  # noqa: E731


def test_the_chapters_exist():
    assert NOTEBOOKS, "no notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_in_the_table_of_contents(path):
    assert f"notebooks/{path.stem}" in toc_files(), f"{path.name} is not in _toc.yml"


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert any((REPO / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), f"{entry} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_outputs_or_execution_counts(path):
    nb = read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: cell {i} has outputs committed"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_kernel_is_python3(path):
    assert read(path).metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_first_cell_is_the_guarded_setup(path):
    cell = read(path).cells[0]
    assert cell.cell_type == "code", f"{path.name}: the first cell must be the setup code cell"
    assert "remove-cell" in cell.metadata.get("tags", []), f"{path.name}: the setup cell must be tagged remove-cell"
    src = cell.source
    lines = src.splitlines()
    pip = [i for i, line in enumerate(lines) if "pip install" in line]
    assert len(pip) == 1 and "--no-deps" in lines[pip[0]], f"{path.name}: install gradlab once, with --no-deps"
    assert lines[pip[0]].startswith((" ", "\t")) and 'if "google.colab" in sys.modules:' in lines[pip[0] - 1], \
        f"{path.name}: the install must run only inside Colab"
    assert "import gradlab" in lines and any("gradlab.setup(" in line for line in lines)
    assert src.strip() == BOOTSTRAP.format(url=config()["repository"]["url"]).strip(), \
        f"{path.name}: the setup cell differs from the book's one bootstrap"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_exactly_one_title(path):
    titles = []
    for cell in read(path).cells:
        if cell.cell_type == "markdown":
            titles += re.findall(r"^# \S.*$", FENCE.sub("", cell.source), re.M)
    assert len(titles) == 1, f"{path.name}: one '# Title' per chapter, found {titles}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_helper_functions_in_notebooks(path):
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            found = re.findall(r"^\s*(?:async\s+)?def\s+(\w+)", cell.source, re.M)
            assert not found, f"{path.name}: cell {i} defines {found}: helpers belong in gradlab/"


def test_bibliography_keys_are_unique():
    keys = bib_keys()
    assert keys, "book/references.bib has no entries"
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"keys defined twice in book/references.bib: {dupes}"


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=ids)
def test_every_citation_is_in_the_bibliography(path):
    if path.suffix == ".ipynb":
        # Colab shows MyST roles raw, so a chapter cites by linking to the work's address in the .bib
        # (book/_ext/gradlab_markup.py makes the links {cite} roles on the website).
        text = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
        assert not CITE.findall(text), f"{path.name} uses {{cite}} roles, which Colab shows raw: link to the work"
        links = CITE_LINK.findall(text)
        assert links, f"{path.name} cites nothing"
        known = bib_addresses()
        plain = lambda url: url.replace("%28", "(").replace("%29", ")")  # noqa: E731
        missing = sorted({f"[{name}]({url})" for name, url in links
                          if plain(url) not in known and plain(url).lower() not in known})
        assert not missing, f"{path.name} cites addresses of no entry in book/references.bib: {missing}"
        return
    text = path.read_text(encoding="utf-8")
    cited = {key.strip() for group in CITE.findall(text) for key in group.split(",")}
    missing = sorted(cited - set(bib_keys()))
    assert not missing, f"{path.name} cites keys missing from book/references.bib: {missing}"
