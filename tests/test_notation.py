"""One symbol, one meaning (book/notation.md): the chapters' math does not reuse a symbol the page
gives to something else. Each pattern below is a reuse the book once had, or one it is easy to fall into."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "notation.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# (pattern in a formula, what the page says instead)
REUSES = [
    (r"\\sigma\s*\(|\\sigma'", "σ is a standard deviation; the logistic function is written sigmoid(z)"),
    (r"\\partial\s*L\b|\bL\s*\(\s*(w|\\theta|x|W)", "L is the smoothness constant; the loss is \\mathcal{L} (or f)"),
    (r"l\s*=\s*1\s*,\s*\\dots\s*,\s*L\b|\bL\s*=\s*\d+\b(?!\s*/)", "L is the smoothness constant; the depth is D"),
    (r"\\mathbb\{R\}\^\{?P\b|\bP\s*=\s*\\operatorname\{softmax\}|P_\{n", "P is a preconditioner; probabilities are \\hat y, the parameter count p"),
    (r"\\mathbb\{R\}\^\{?H\b|\\times\s*H\b|\bH\s*\\times", "H is the Hessian; a layer's width is d_l"),
    (r"\\lambda\s*\\(\||lVert)|\\frac\{\\lambda\}\{2\}|\+\s*\\lambda\s*(\\|$|\s*\\mathrm)", "λ is an eigenvalue; a penalty's weight is α"),
    (r"\\varepsilon", "one small constant, \\epsilon; a finite-difference step is δ"),
]


def formulas(nb: Path) -> list[tuple[int, str]]:
    cells = json.loads(nb.read_text())["cells"]
    out = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "markdown":
            continue
        text = "".join(c["source"])
        out += [(i, m.group(1) or m.group(2)) for m in re.finditer(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", text, re.S)]
    return out


def test_the_page_lists_each_symbol_once():
    rows = [line.split("|")[1].strip() for line in PAGE.read_text().splitlines()
            if line.startswith("| $") or line.startswith("| \\")]
    symbols = [s for row in rows for s in re.findall(r"\$([^$]+)\$", row)]
    assert len(symbols) >= 30
    dupes = {s for s in symbols if symbols.count(s) > 1}
    assert not dupes, f"listed twice in book/notation.md: {dupes}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_symbol_means_two_things(nb):
    problems = []
    for i, f in formulas(nb):
        for pattern, rule in REUSES:
            if re.search(pattern, f):
                problems.append(f"cell {i}: ${f.strip()[:70]}$ ({rule})")
    assert not problems, "\n".join(problems)


def test_the_patterns_catch_what_they_name():
    """Each pattern fires on the reuse it names and not on the page's own use of the symbol."""
    caught = ["\\sigma(z)", "\\partial L/\\partial W", "l = 1, \\dots, L", "W_2 \\in \\mathbb{R}^{C \\times H}",
              "P = \\operatorname{softmax}(Z_2)", "\\frac{\\lambda}{2}\\|w\\|^2", "\\varepsilon"]
    fine = ["\\sigma^2/B", "\\eta < 2/L", "L = \\lambda_{\\max}", "x_{k+1} = x_k - \\eta P \\nabla f(x_k)",
            "H = \\mathrm{diag}(1, \\kappa)", "\\partial \\mathcal{L}/\\partial W", "1 + \\eta|\\lambda|",
            "\\operatorname{sigmoid}(z)", "\\kappa = L/\\mu"]
    for f in caught:
        assert any(re.search(p, f) for p, _ in REUSES), f
    for f in fine:
        assert not any(re.search(p, f) for p, _ in REUSES), f
