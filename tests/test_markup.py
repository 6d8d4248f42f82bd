"""The chapters read cleanly where no Sphinx extension runs (Colab, JupyterLab), and the website still
gets numbered exercises, folded solutions and answers, notes, a bibliography and figure descriptions.

The notebooks hold portable markdown; ``book/_ext/gradlab_markup.py`` turns it into MyST when the
book is built. These tests look at both ends: the notebooks as a plain Markdown renderer shows them,
the conversion on small strings, and the built website.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from conftest import REPO

sys.path.insert(0, str(REPO / "book" / "_ext"))
from gradlab_markup import Converter, bib_addresses, chapter_number  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BIB = REPO / "book" / "references.bib"
ids = lambda p: p.name  # noqa: E731


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


def plain_markdown() -> MarkdownIt:
    """What Colab and JupyterLab amount to for this purpose: CommonMark with tables, no extensions."""
    return MarkdownIt("commonmark").enable("table")


# --- 1. no raw MyST where a plain Markdown renderer shows the chapter ---------------------------------

ROLE_IN_HTML = re.compile(r"\{[a-z][\w:.-]*\}\s*<code>")
RAW_TEXT = [
    (re.compile(r"^\s*(?:`{3,}|~{3,})\s*\{"), "a directive fence"),
    (re.compile(r"^\s*:{3,}"), "a ::: fence"),
    (re.compile(r"^\s*:[a-z][\w-]*:(?:\s|$)"), "a directive option line (:class:, :label:, ...)"),
    (re.compile(r"^\s*\([^()\s]+\)=\s*$"), "a (label)= target"),
    (re.compile(r"\{(?:eq|ref|numref|doc|cite|cite:[a-z]+|math|term|download)\}"), "a MyST role"),
]


def raw_myst(markdown: str) -> list[str]:
    """The MyST constructs a plain Markdown renderer would show as text, in one markdown cell."""
    md = plain_markdown()
    tokens = md.parse(markdown)
    html = md.renderer.render(tokens, md.options, {})
    found = [f"a directive fence ```{t.info.strip()}" for t in tokens if t.type == "fence" and t.info.strip().startswith("{")]
    found += [f"a role: {m.group(0)}" for m in ROLE_IN_HTML.finditer(html)]
    text = BeautifulSoup(html, "html.parser").get_text("\n")
    for line in text.splitlines():
        found += [f"{what}: {line.strip()!r}" for pattern, what in RAW_TEXT if pattern.search(line)]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_raw_myst_in_a_plain_markdown_renderer(path):
    problems = [f"cell {i}: {p}" for i, src in markdown_cells(path) for p in raw_myst(src)]
    assert not problems, f"{path.name} shows MyST raw in Colab/JupyterLab:\n" + "\n".join(problems)


@pytest.mark.parametrize("sample", [
    "```{exercise} Predict\n:label: ex-1\n\nText.\n```",
    "```{admonition} Answer\n:class: dropdown\nText.\n```",
    "As shown {cite:p}`cauchy1847methode`.",
    "{cite:t}`keskar2017large` found it.",
    ":::{note}\nText.\n:::",
    "(sec-intro)=\n# Title",
    "See {numref}`fig-1` and {eq}`eq-1`.",
])
def test_the_raw_myst_check_catches_myst(sample):
    """The check above fails on the markup the chapters used to hold."""
    assert raw_myst(sample)


def test_the_raw_myst_check_passes_the_portable_forms():
    sample = ("**Exercise 1.1 (Predict)**\n\nText with $\\mathbb{R}^{n}$ and `code`.\n\n<details>\n"
              "<summary>Solution</summary>\n\n```python\nx = {1: 2}\n```\n\n</details>\n\n"
              "> **Note.** Text ([Cauchy, 1847](https://gallica.bnf.fr/x)).")
    assert raw_myst(sample) == []


# --- 2. folded blocks are well formed ---------------------------------------------------------------

def details_problems(markdown: str) -> list[str]:
    """Unbalanced <details>, a <details> without its <summary>, or a body that would not render as markdown."""
    md = plain_markdown()
    problems, depth = [], 0
    opened = closed = 0
    for token in md.parse(markdown):
        if token.type != "html_block":
            continue
        content = token.content.strip()
        opens, closes = content.count("<details>"), content.count("</details>")
        opened, closed = opened + opens, closed + closes
        if opens:
            if not re.fullmatch(r"<details>\s*<summary>[^<>]+</summary>", content):
                problems.append(f"the <details> block is not just <details><summary>...</summary> followed by a "
                                f"blank line (its body would not render as markdown): {content[:80]!r}")
        if closes and content != "</details>":
            problems.append(f"</details> must stand alone after a blank line: {content[:80]!r}")
        depth += opens - closes
        if depth < 0 or depth > 1:
            problems.append("<details> nested or closed before it was opened")
    if opened != closed:
        problems.append(f"{opened} <details> opened, {closed} closed")
    soup = BeautifulSoup(md.render(markdown), "html.parser")
    for details in soup.find_all("details"):
        first = details.find(True)
        if first is None or first.name != "summary" or not first.get_text(strip=True):
            problems.append("a <details> whose first element is not a non-empty <summary>")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_details_has_a_summary_and_is_balanced(path):
    cells = markdown_cells(path)
    problems = [f"cell {i}: {p}" for i, src in cells for p in details_problems(src)]
    assert not problems, "\n".join(problems)
    assert sum(src.count("<details>") for _, src in cells) >= 5, f"{path.name}: no folded solutions or answers?"


@pytest.mark.parametrize("sample", [
    "<details>\n<summary>Answer</summary>\nText right under the summary.\n</details>",
    "<details>\n\nNo summary.\n\n</details>",
    "<details>\n<summary>Answer</summary>\n\nNever closed.",
    "<details>\n<summary>A</summary>\n\n<details>\n<summary>B</summary>\n\nx\n\n</details>\n\n</details>",
])
def test_the_details_check_catches_bad_blocks(sample):
    assert details_problems(sample)


# --- 3. citations: links to a work's address, named by author and year ------------------------------

def _address(url: str) -> str:
    parts = urlsplit(url.strip())
    path = unquote(parts.path).rstrip("/")
    host = parts.netloc.lower().removeprefix("www.").replace("dx.doi.org", "doi.org")
    return host + (path.lower() if host == "doi.org" else path)


def bib_table() -> dict[str, set[str]]:
    """Address -> bibliography keys, from each entry's doi, url and arXiv eprint (read with pybtex)."""
    from pybtex.database import parse_file

    table: dict[str, set[str]] = {}
    for key, entry in parse_file(str(BIB)).entries.items():
        f = {k.lower(): v for k, v in entry.fields.items()}
        urls = [f"https://doi.org/{f['doi']}"] if "doi" in f else []
        urls += [f["url"]] if "url" in f else []
        urls += [f"https://arxiv.org/abs/{f['eprint']}"] if "eprint" in f else []
        for url in urls:
            table.setdefault(_address(url), set()).add(key)
    return table


def bib_people() -> dict[str, tuple[str, str]]:
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    people = {}
    for key, entry in parse_file(str(BIB)).entries.items():
        first = entry.persons["author"][0]
        people[key] = (Text.from_latex(" ".join(first.prelast_names + first.last_names)).render_as("text"),
                       entry.fields["year"])
    return people


def links(markdown: str) -> list[tuple[str, str]]:
    """(text, address) of every link a plain Markdown renderer finds."""
    found = []
    for token in plain_markdown().parse(markdown):
        children = token.children or []
        for i, child in enumerate(children):
            if child.type == "link_open":
                j = i + 1
                while children[j].type != "link_close":
                    j += 1
                found.append(("".join(c.content for c in children[i + 1:j]), child.attrGet("href")))
    return found


CITATION_TEXT = re.compile(r"^(?P<names>.+?)(?: \((?P<y1>\d{4})\)|, (?P<y2>\d{4}))$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_citation_link_names_its_entry(path):
    table, people = bib_table(), bib_people()
    cited, problems = 0, []
    for i, src in markdown_cells(path):
        for text, url in links(src):
            keys = table.get(_address(url), set())
            looks_cited = CITATION_TEXT.match(text)
            if not keys and not looks_cited:
                continue  # an ordinary link
            if len(keys) != 1:
                problems.append(f"cell {i}: [{text}]({url}) matches {len(keys)} bibliography entries: {sorted(keys)}")
                continue
            (key,) = keys
            surname, year = people[key]
            if not looks_cited or surname not in looks_cited["names"] \
                    or (looks_cited["y1"] or looks_cited["y2"]) != year:
                problems.append(f"cell {i}: [{text}] should name {surname} and {year} ({key})")
            cited += 1
    assert not problems, "\n".join(problems)
    assert cited >= 5, f"{path.name}: only {cited} citation links"


# --- 4. the conversion, on small strings -------------------------------------------------------------

ADDRESSES = bib_addresses([BIB])


def convert(*cells: str, chapter: int | None = 3) -> tuple[list[str], list[str]]:
    c = Converter(ADDRESSES, chapter)
    out = [c.cell(s, i) for i, s in enumerate(cells)]
    return out, [message for _, message in c.warnings]


def test_an_exercise_and_its_solution_become_numbered_directives():
    (task, _, solution), warnings = convert(
        "## Exercises\n\n**Exercise 3.1 (Predict, then run: a title)**\n\nDo it with $x$.",
        "code is not markdown, but a cell in between does not matter",
        "<details>\n<summary>Solution</summary>\n\nThe answer:\n\n```python\nx = 1\n```\n\n</details>")
    assert warnings == []
    assert task == ("## Exercises\n\n```{exercise} Predict, then run: a title\n:label: ex-3-1\n\nDo it with $x$.\n```")
    assert solution.startswith("````{solution} ex-3-1\n:class: dropdown\n\nThe answer:\n\n```python\nx = 1\n```\n")
    assert solution.endswith("\n````"), "the outer fence must be longer than the code fence inside it"


def test_a_solution_and_the_next_exercise_in_one_cell():
    (first, second), warnings = convert(
        "**Exercise 3.1 (One)**\n\nTask one.",
        "<details><summary>Solution</summary>\n\nSolved.\n\n</details>\n\n**Exercise 3.2 (Two)**\n\nTask two.\n\n"
        "<details>\n<summary>Solution</summary>\n\nAlso solved.\n\n</details>")
    assert warnings == []
    assert "{solution} ex-3-1" in second and "```{exercise} Two\n:label: ex-3-2\n\nTask two.\n```" in second
    assert "{solution} ex-3-2" in second and "<details>" not in second


def test_a_review_answer_becomes_a_dropdown_admonition():
    (out,), warnings = convert("**1. Why?**\n\n<details>\n<summary>Answer</summary>\n\nBecause $a < b$.\n\n</details>")
    assert warnings == []
    assert out == "**1. Why?**\n\n```{admonition} Answer\n:class: dropdown\n\nBecause $a < b$.\n```"


def test_notes_become_note_boxes():
    (plain, titled), warnings = convert("> **Note.** One line,\n> and another.",
                                        "> **Note: A title**\n>\n> Body with `code`.\n\nAfter the note.")
    assert warnings == []
    assert plain == "```{note}\n\nOne line,\nand another.\n```"
    assert titled == "```{admonition} A title\n:class: note\n\nBody with `code`.\n```\n\nAfter the note."


def test_citation_links_become_cite_roles():
    (out,), warnings = convert(
        "[Keskar et al. (2017)](https://arxiv.org/abs/1609.04836) found it "
        "([Robbins and Monro, 1951](https://doi.org/10.1214/aoms/1177729586); "
        "[Bottou et al., 2018](https://doi.org/10.1137/16M1080173)), as did momentum "
        "([Polyak, 1964](https://doi.org/10.1016/0041-5553%2864%2990137-5)). [PyTorch](https://pytorch.org) is a link.")
    assert warnings == []
    assert out == ("{cite:t}`keskar2017large` found it {cite:p}`robbins1951stochastic,bottou2018optimization`, "
                   "as did momentum {cite:p}`polyak1964some`. [PyTorch](https://pytorch.org) is a link.")


def test_a_citation_wrapped_inside_a_note_still_converts():
    (out,), warnings = convert("> **Note.** As [Keskar et al.\n> (2017)](https://arxiv.org/abs/1609.04836) found.")
    assert warnings == []
    assert out == "```{note}\n\nAs {cite:t}`keskar2017large` found.\n```"


def test_code_is_left_alone():
    src = "`[Cauchy (1847)](https://gallica.bnf.fr/ark:/12148/bpt6k2982c/f540.item)`\n\n```\n**Exercise 3.1 (x)**\n```"
    (out,), warnings = convert(src)
    assert out == src and warnings == []


@pytest.mark.parametrize("cells, expected", [
    (["**Exercise 3.2 (Skips one)**\n\nTask.", "<details>\n<summary>Solution</summary>\n\nx\n\n</details>"],
     "should be 'Exercise 3.1'"),
    (["<details>\n<summary>Solution</summary>\n\nx\n\n</details>"], "no exercise above it"),
    (["[Keskar 2017](https://arxiv.org/abs/1609.04836) found."], "neither form"),
    (["As shown ([Nesterov, 2017](https://doi.org/10.1007/978-1-4419-8853-9))."], "points at nesterov2004introductory"),
    (["```{note}\nraw\n```"], "MyST syntax"),
    (["See {cite:p}`cauchy1847methode`."], "MyST syntax"),
    (["<details>\n<summary>Answer</summary>\n\nnever closed"], "not closed"),
])
def test_broken_conventions_are_warned_about(cells, expected):
    _, warnings = convert(*cells)
    assert any(expected in w for w in warnings), warnings


def test_the_chapter_number_comes_from_the_file_name():
    assert chapter_number("notebooks/01_gradient_descent") == 1
    assert chapter_number("notebooks/12_x") == 12
    assert chapter_number("chapter") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_the_chapters_convert_without_warnings(path):
    converter = Converter(ADDRESSES, chapter_number(path.stem))
    converter.notebook(path.read_text(encoding="utf-8"))
    assert converter.warnings == []


# --- figures: a text alternative for every static figure ---------------------------------------------

DRAWS = re.compile(r"plt\.show\(\)|plt\.subplots\(|\bplots\.plot_\w+\(")


def figure_cells(path: Path) -> list[tuple[int, nbformat.NotebookNode]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and DRAWS.search(c.source)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_figure_cell_has_a_text_alternative(path):
    cells = figure_cells(path)
    assert cells, f"{path.name}: no figure cells found"
    for i, cell in cells:
        alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")
        assert 80 <= len(alt) <= 800, f"{path.name}: cell {i} draws a figure; its alt text has {len(alt)} characters"
        assert "\n" not in alt and not alt.lower().startswith(("image", "figure of", "plot of")), \
            f"{path.name}: cell {i}: say what the figure shows, on one line"


# --- 5. the built website -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages(built_book):
    assert built_book.returncode == 0, "the book did not build: see tests/test_book.py"
    out = {}
    for path in NOTEBOOKS:
        html = (built_book.html / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
        soup = BeautifulSoup(html, "html.parser")
        for kf in soup.select("div.gradlab-kf"):
            kf.decompose()
        out[path] = soup.select_one("article")
        out[path, "page"] = soup
    return out


@pytest.mark.book
@pytest.mark.xdist_group("book")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_the_site_numbers_exercises_and_folds_solutions(pages, path):
    article = pages[path]
    written = [m.group(0).strip("*") for _, src in markdown_cells(path)
               for m in re.finditer(r"^\*\*Exercise \d+\.\d+ \(.+\)\*\*$", src, re.M)]
    shown = [" ".join(p.get_text(" ", strip=True).split()) for p in article.select("div.exercise > p.admonition-title")]
    assert written, f"{path.name}: no exercises"
    assert shown == written, "the site's exercise numbers and titles differ from the notebook's"
    solutions = article.select("div.solution.dropdown")
    assert len(solutions) == len(written)
    for n, solution in enumerate(solutions, start=1):
        link = solution.select_one("p.admonition-title a")
        assert link is not None and link["href"] == f"#ex-{chapter_number(path.stem)}-{n}"
        assert article.select_one(f"div.exercise#ex-{chapter_number(path.stem)}-{n}") is not None
    answers = [d for d in article.select("div.dropdown.admonition")
               if d.select_one("p.admonition-title").get_text(strip=True) == "Answer"]
    assert len(answers) == sum(src.count("<summary>Answer</summary>") for _, src in markdown_cells(path))
    notes = sum(len(re.findall(r"^> \*\*Note[.:]", src, re.M)) for _, src in markdown_cells(path))
    assert len(article.select("div.note.admonition")) == notes


@pytest.mark.book
@pytest.mark.xdist_group("book")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_the_site_links_citations_to_the_bibliography(pages, path, built_book):
    references = BeautifulSoup((built_book.html / "book" / "references.html").read_text(encoding="utf-8"),
                               "html.parser")
    entries = {div["id"]: div.get_text(" ", strip=True) for div in references.select("div.citation")}
    anchors = pages[path].select("span.bibtex-citation a.reference.internal")
    table = bib_table()
    cited = sum(1 for _, src in markdown_cells(path) for _, url in links(src) if _address(url) in table)
    assert len(anchors) == cited > 0, "one link to the bibliography per citation link in the notebook"
    for a in anchors:
        page, _, target = a["href"].partition("#")
        assert page.endswith("book/references.html") and target in entries, a["href"]


@pytest.mark.book
@pytest.mark.xdist_group("book")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_the_site_shows_no_raw_markup(pages, path):
    article = pages[path]
    html, text = str(article), article.get_text("\n")
    assert not article.find(["details", "summary"]), "a raw <details> reached the page"
    for raw in ("&lt;details", "&lt;summary", "{cite", ":class:", ":label:", "```{", "**Exercise", "**Note"):
        assert raw not in html and raw not in text, f"{path.name}: {raw!r} shows on the page"


@pytest.mark.book
@pytest.mark.xdist_group("book")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_figure_on_the_site_has_its_alt_text(pages, path):
    images = pages[path, "page"].find_all("img")  # the whole page, outside the kernel-free figures
    assert images
    for img in images:
        alt = (img.get("alt") or "").strip()
        assert alt and alt != img.get("src") and not alt.endswith((".png", ".svg", ".jpg")), \
            f"{path.name}: <img src={img.get('src')!r}> has no text alternative (alt={alt!r})"
    figures = [img["alt"] for img in images if "/_images/" in img.get("src", "")]
    written = [c.metadata["mystnb"]["image"]["alt"] for _, c in figure_cells(path)]
    assert figures == written, "the site's figure descriptions differ from the notebook's metadata"
