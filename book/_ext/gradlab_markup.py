"""Portable chapter markdown, turned into MyST when the book is built.

The chapters' markdown cells are written so that Colab and a plain JupyterLab show them cleanly:
neither can load Sphinx extensions, so no MyST directive or role may appear in a notebook. When the
website is built, this extension rewrites each notebook's markdown in Sphinx's ``source-read``
event, before myst-nb parses it, so the site still gets numbered exercises, dropdown solutions
and answers, note boxes and a bibliography. Code cells, metadata and cell ids are left alone.

The conventions (the single place that defines them; README.md's "Writing a chapter" repeats them):

**Exercise.** A paragraph of its own, ``**Exercise 1.2 (Predict, then run: quadrupling the batch)**``,
followed by the task. Its number is the chapter's (the notebook's ``NN_`` prefix) and the
exercise's place in the chapter, so Colab readers see the same number as the site; the build warns
when it is out of step. The task runs to the end of the cell, or to a ``<details>`` or the next
exercise. On the site it becomes ``{exercise}`` with ``:label: ex-1-2``.

**Solution.** ``<details>``, then ``<summary>Solution</summary>``, a blank line, the solution in
markdown, a blank line and ``</details>``. It belongs to the latest exercise above it (in the same
cell or an earlier one) and becomes ``{solution} ex-1-2`` with ``:class: dropdown``.

**Answer, or any other folded text.** The same ``<details>`` block with another summary, for
example ``<summary>Answer</summary>``, becomes ``{admonition} Answer`` with ``:class: dropdown``.

**Note.** A block quote whose first line is ``> **Note.** text`` becomes ``{note}``; one whose
first line is ``> **Note: A title**`` alone becomes ``{admonition} A title`` with ``:class: note``.
Every line of the quote starts with ``>``.

**Citation.** A link to the work's address as given in ``book/references.bib`` (its ``doi`` as
``https://doi.org/…``, else its ``url``, else its arXiv ``eprint`` as ``https://arxiv.org/abs/…``;
parentheses in an address written ``%28``/``%29``):

- in the sentence, ``[Keskar et al. (2017)](https://arxiv.org/abs/1609.04836)`` becomes
  ``{cite:t}`keskar2017large```;
- in parentheses, ``([Robbins and Monro, 1951](https://doi.org/…); [Bottou et al., 2018](…))``
  becomes ``{cite:p}`robbins1951stochastic,bottou2018optimization```.

The link text names the first author's surname (``A``, ``A and B``, ``A et al.``) and the year,
as the site prints them. Links to any other address are ordinary links.

Anything that breaks a convention (a citation link in neither form, a solution with no exercise,
an exercise number out of step, MyST syntax left in a notebook) is a build warning, so ``-W``
builds fail on it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["Converter", "bib_addresses", "chapter_number", "entry_url", "normalize_url", "setup"]

EXERCISE = re.compile(r"^\*\*Exercise (\d+)\.(\d+) \((.+)\)\*\*\s*$")
DETAILS_OPEN = re.compile(r"^<details>\s*(?:<summary>(.*?)</summary>)?\s*$")
SUMMARY = re.compile(r"^<summary>(.*?)</summary>\s*$")
DETAILS_CLOSE = re.compile(r"^</details>\s*$")
NOTE_TITLED = re.compile(r"^>\s?\*\*Note: (.+?)\*\*\s*$")
NOTE_PLAIN = re.compile(r"^>\s?\*\*Note\.\*\*\s*(.*)$")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
# A markdown link: the destination may hold one level of balanced parentheses.
LINK = re.compile(r"\[([^\[\]]+)\]\(\s*(<[^>\n]+>|[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)\s*\)")
GROUP = re.compile(r"\(\s*(" + LINK.pattern + r"(?:\s*;\s*" + LINK.pattern + r")*)\s*\)")
TEXTUAL = re.compile(r"^(.+?) \((\d{4}[a-z]?)\)$")
PARENTHETICAL = re.compile(r"^(.+?), (\d{4}[a-z]?)$")
# MyST that Colab would show raw: directive fences, roles, colon fences, options and targets.
RAW_MYST = re.compile(r"^\s*(?:`{3,}|~{3,})\s*\{[\w:-]+\}|\{[\w:.-]+\}`|^\s*:{3,}|^:[\w-]+:(?:\s|$)|^\(\S+\)=\s*$",
                      re.M)


# --- the bibliography: which address belongs to which entry ---------------------------------------

def normalize_url(url: str) -> str:
    """A link address in the form addresses are compared in (scheme, host, escapes, DOI case)."""
    url = url.strip().strip("<>")
    parts = urlsplit(url)
    host = parts.netloc.lower().removeprefix("www.")
    if host == "dx.doi.org":
        host = "doi.org"
    path = unquote(parts.path).rstrip("/")
    if host == "doi.org":
        path = path.lower()  # DOIs are case-insensitive
    if host == "arxiv.org":
        path = re.sub(r"^/pdf/", "/abs/", path)
        path = re.sub(r"v\d+(\.pdf)?$|\.pdf$", "", path)
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{path}{query}"


def entry_url(fields) -> str | None:
    """The address a chapter links to for one bibliography entry: DOI, else URL, else arXiv."""
    lower = {k.lower(): v for k, v in fields.items()}
    if lower.get("doi"):
        doi = lower["doi"].strip()
        return "https://doi.org/" + doi.replace("(", "%28").replace(")", "%29")
    if lower.get("url"):
        return lower["url"].strip()
    if lower.get("eprint") and lower.get("archiveprefix", "arXiv").lower() == "arxiv":
        return f"https://arxiv.org/abs/{lower['eprint'].strip()}"
    return None


def _entry_addresses(fields) -> set[str]:
    lower = {k.lower(): v for k, v in fields.items()}
    found = set()
    if lower.get("doi"):
        found.add(normalize_url("https://doi.org/" + lower["doi"]))
    if lower.get("url"):
        found.add(normalize_url(lower["url"]))
    if lower.get("eprint") and lower.get("archiveprefix", "arXiv").lower() == "arxiv":
        found.add(normalize_url(f"https://arxiv.org/abs/{lower['eprint']}"))
    return found


@dataclass(frozen=True)
class BibEntry:
    """What the converter checks a citation link against."""

    key: str
    surname: str
    year: str


def bib_addresses(paths) -> dict[str, BibEntry]:
    """Normalized address -> entry, for every entry of the given .bib files with a DOI, URL or arXiv id."""
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    table: dict[str, BibEntry] = {}
    clashes: dict[str, set[str]] = {}
    for path in paths:
        for key, entry in parse_file(str(path)).entries.items():
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            surname = Text.from_latex(" ".join(people[0].prelast_names + people[0].last_names)).render_as("text") \
                if people else ""
            item = BibEntry(key, surname, entry.fields.get("year", "").strip())
            for address in _entry_addresses(entry.fields):
                if address in table and table[address].key != key:
                    clashes.setdefault(address, {table[address].key}).add(key)
                table[address] = item
    for address in clashes:  # an address shared by two entries cites neither
        table.pop(address, None)
    return table


# --- the conversion --------------------------------------------------------------------------------

def _fence_for(lines: list[str]) -> str:
    """A backtick fence longer than any fence inside the block it wraps."""
    longest = max((len(m.group(1)) for line in lines if (m := FENCE.match(line)) and m.group(1)[0] == "`"),
                  default=0)
    return "`" * max(3, longest + 1)


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _directive(name: str, argument: str, options: dict[str, str], body: list[str]) -> list[str]:
    body = _trim(body)
    fence = _fence_for(body)
    head = f"{fence}{{{name}}}" + (f" {argument}" if argument else "")
    return [head, *(f":{k}: {v}" for k, v in options.items()), "", *body, fence]


@dataclass
class Converter:
    """Rewrites one notebook's markdown cells, in order, from the portable conventions into MyST.

    ``addresses`` maps normalized link addresses to bibliography entries (see ``bib_addresses``);
    ``chapter`` is the chapter number exercises must carry (None: not checked). Problems are
    collected in ``warnings`` as (cell index, message).
    """

    addresses: dict[str, BibEntry]
    chapter: int | None = None
    warnings: list[tuple[int | None, str]] = field(default_factory=list)
    _exercises: int = 0
    _open: str | None = None  # label of the latest exercise that has no solution yet
    _cell: int | None = None

    def warn(self, message: str) -> None:
        self.warnings.append((self._cell, message))

    # citations
    def _cite(self, text: str, url: str, form: re.Pattern) -> str | None:
        entry = self.addresses.get(normalize_url(url))
        if entry is None:
            return None
        text = re.sub(r"\s*\n>?\s*", " ", text).strip()
        match = form.match(text)
        if not match:
            self.warn(f"citation link [{text}]({url}) is in neither form: 'Author (Year)' in the sentence, "
                      f"or '([Author, Year](...))' in parentheses")
            return None
        if (entry.surname and entry.surname not in match.group(1)) or match.group(2)[:4] != entry.year:
            self.warn(f"citation link [{text}] points at {entry.key}, by {entry.surname} ({entry.year})")
        return entry.key

    def citations(self, text: str) -> str:
        """Citation links -> {cite:p} and {cite:t}; code spans and fenced code are left alone."""
        kept: list[str] = []

        def keep(m: re.Match) -> str:
            kept.append(m.group(0))
            return f"\x00{len(kept) - 1}\x00"

        text = re.sub(r"^(\s{0,3})(`{3,}|~{3,})[^\n]*\n.*?^\s{0,3}\2[`~]*[ \t]*$", keep, text, flags=re.M | re.S)
        text = re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", keep, text, flags=re.S)

        def group(m: re.Match) -> str:
            links = list(LINK.finditer(m.group(1)))
            if not all(normalize_url(link.group(2)) in self.addresses for link in links):
                return m.group(0)  # not (only) citations: each citation link is looked at on its own below
            keys = [self._cite(link.group(1), link.group(2).strip("<>"), PARENTHETICAL) for link in links]
            if all(keys):
                return "{cite:p}`" + ",".join(keys) + "`"
            return keep(m)  # already warned about; left as written

        text = GROUP.sub(group, text)

        def single(m: re.Match) -> str:
            if normalize_url(m.group(2)) not in self.addresses:
                return m.group(0)
            if m.string[max(0, m.start() - 1):m.start()] == "(" and m.string[m.end():m.end() + 1] == ")":
                self.warn(f"citation link {m.group(0)} in parentheses: write its text as 'Author, Year'")
                return m.group(0)
            key = self._cite(m.group(1), m.group(2).strip("<>"), TEXTUAL)
            return "{cite:t}`" + key + "`" if key else m.group(0)

        text = LINK.sub(single, text)
        return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)

    # blocks
    def _exercise(self, match: re.Match, body: list[str]) -> list[str]:
        chapter, number, title = int(match.group(1)), int(match.group(2)), match.group(3).strip()
        self._exercises += 1
        want = f"{self.chapter if self.chapter is not None else chapter}.{self._exercises}"
        if f"{chapter}.{number}" != want:
            self.warn(f"'Exercise {chapter}.{number}' should be 'Exercise {want}' (chapter, then its place)")
        if self._open:
            self.warn(f"exercise {self._open} has no solution before the next exercise")
        label = f"ex-{chapter}-{number}"
        self._open = label
        return _directive("exercise", title, {"label": label}, body)

    def _details(self, summary: str, body: list[str]) -> list[str]:
        if summary == "Solution":
            if not self._open:
                self.warn("a <details> Solution with no exercise above it that still lacks one")
                return _directive("admonition", "Solution", {"class": "dropdown"}, body)
            label, self._open = self._open, None
            return _directive("solution", label, {"class": "dropdown"}, body)
        return _directive("admonition", summary, {"class": "dropdown"}, body)

    def cell(self, source: str, index: int | None = None) -> str:
        """One markdown cell's source, converted; call for every markdown cell in notebook order."""
        self._cell = index
        for m in RAW_MYST.finditer(_without_code(source)):
            self.warn(f"MyST syntax {m.group(0).strip()!r} in a notebook: Colab shows it raw")
        lines = self.citations(source).split("\n")
        out: list[str] = []
        i, fence = 0, None
        while i < len(lines):
            line = lines[i]
            if fence:
                out.append(line)
                if re.match(rf"^\s{{0,3}}{fence}[`~]*\s*$", line):
                    fence = None
                i += 1
                continue
            if (m := FENCE.match(line)):
                fence = m.group(1)
                out.append(line)
                i += 1
                continue
            if (m := EXERCISE.match(line)):
                j = self._block_end(lines, i + 1, stop_at_details=True)
                out += self._exercise(m, lines[i + 1:j])
                i = j
                continue
            if (m := DETAILS_OPEN.match(line)):
                summary, j = m.group(1), i + 1
                if summary is None:
                    while j < len(lines) and not lines[j].strip():
                        j += 1
                    s = SUMMARY.match(lines[j]) if j < len(lines) else None
                    if not s:
                        self.warn("<details> without a <summary> line right after it")
                        out.append(line)
                        i += 1
                        continue
                    summary, j = s.group(1), j + 1
                end = self._block_end(lines, j, stop_at_details=False)
                if end >= len(lines):
                    self.warn(f"<details> '{summary}' is not closed by a </details> line in the same cell")
                out += self._details(summary.strip(), lines[j:end])
                i = end + 1
                continue
            if (m := NOTE_TITLED.match(line)) or NOTE_PLAIN.match(line):
                j = i
                while j < len(lines) and lines[j].startswith(">"):
                    j += 1
                body = [re.sub(r"^>\s?", "", x) for x in lines[i + 1:j]]
                if m:
                    out += _directive("admonition", m.group(1).strip(), {"class": "note"}, body)
                else:
                    first = NOTE_PLAIN.match(line).group(1)
                    out += _directive("note", "", {}, [first, *body])
                i = j
                continue
            out.append(line)
            i += 1
        return "\n".join(out)

    def _block_end(self, lines: list[str], start: int, stop_at_details: bool) -> int:
        """Where an exercise's task (at a <details> or exercise) or a <details> body (at </details>) ends."""
        fence, depth = None, 0
        for j in range(start, len(lines)):
            line = lines[j]
            if fence:
                if re.match(rf"^\s{{0,3}}{fence}[`~]*\s*$", line):
                    fence = None
                continue
            if (m := FENCE.match(line)):
                fence = m.group(1)
            elif stop_at_details and (DETAILS_OPEN.match(line) or EXERCISE.match(line)):
                return j
            elif not stop_at_details and DETAILS_OPEN.match(line):
                depth += 1
                self.warn("a <details> inside another <details>: the site cannot fold it")
            elif not stop_at_details and DETAILS_CLOSE.match(line):
                if depth == 0:
                    return j
                depth -= 1
        return len(lines)

    def notebook(self, text: str) -> str:
        """A whole .ipynb (its JSON text), with every markdown cell converted."""
        nb = json.loads(text)
        for index, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "markdown":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            cell["source"] = self.cell(source, index)
        if self._open:
            self._cell = None
            self.warn(f"exercise {self._open} has no solution")
        return json.dumps(nb, ensure_ascii=False, indent=1)


def _without_code(text: str) -> str:
    text = re.sub(r"^(\s{0,3})(`{3,}|~{3,})(?!\s*\{)[^\n]*\n.*?^\s{0,3}\2[`~]*[ \t]*$", "", text, flags=re.M | re.S)
    return re.sub(r"(?<![`}])(`+)(?![`{]).+?(?<!`)\1(?!`)", "", text)  # code spans, not a role's `key`


def chapter_number(docname: str) -> int | None:
    """The chapter a notebook is, from its file name's ``NN_`` prefix (``notebooks/01_x`` -> 1)."""
    m = re.match(r"(\d+)_", Path(docname).name)
    return int(m.group(1)) if m else None


# --- Sphinx -----------------------------------------------------------------------------------------

_BIB_CACHE: dict[tuple, dict[str, BibEntry]] = {}


def _addresses(app) -> dict[str, BibEntry]:
    paths = [Path(app.srcdir) / p for p in getattr(app.config, "bibtex_bibfiles", []) or []]
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in paths if p.is_file())
    if stamp not in _BIB_CACHE:
        _BIB_CACHE.clear()
        _BIB_CACHE[stamp] = bib_addresses([Path(p) for p, _ in stamp])
    return _BIB_CACHE[stamp]


def convert_source(app, docname: str, source: list[str]) -> None:
    """``source-read``: a notebook's portable markdown becomes MyST before myst-nb parses it."""
    from sphinx.util import logging

    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb":
        return
    converter = Converter(_addresses(app), chapter_number(docname))
    source[0] = converter.notebook(source[0])
    logger = logging.getLogger(__name__)
    for cell, message in converter.warnings:
        where = f" (cell {cell})" if cell is not None else ""
        logger.warning(f"{message}{where}", location=docname, type="gradlab", subtype="markup")


def setup(app) -> dict:
    """Register the conversion; it must run before myst-nb parses the notebooks, which ``source-read`` does."""
    app.connect("source-read", convert_source)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
