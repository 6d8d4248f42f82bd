"""Showing the package's own code on the page (Chapter 3 shows its from-scratch optimizers this way).

A notebook may not define functions (they belong in the package, where the tests run them), so a chapter
that teaches an implementation displays the package's source instead: the reader reads exactly the lines
that ``tests/`` check against PyTorch.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import Any

from IPython.display import Markdown, display

__all__ = ["source", "show_code"]


def source(obj: Any, skip_docstring: bool = True) -> str:
    """The dedented source of a function, method or class, without its docstring unless asked."""
    try:
        text = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as err:
        raise TypeError(f"no source to show for {obj!r}: {err}") from None
    doc = inspect.getdoc(obj)
    if skip_docstring and doc:
        lines = text.splitlines()
        for i, line in enumerate(lines):  # the docstring is the first string literal after the signature
            stripped = line.strip()
            if stripped.startswith(('"""', "'''", 'r"""')):
                quote = stripped.lstrip("r")[:3]
                end = i if stripped.count(quote) >= 2 and len(stripped) > 3 else next(
                    j for j in range(i + 1, len(lines)) if quote in lines[j])
                del lines[i:end + 1]
                break
        text = "\n".join(lines) + "\n"
    return text


def show_code(*objs: Any) -> None:
    """Display the source of ``objs`` as one highlighted Python listing (Markdown, so the website renders it too)."""
    body = "\n\n".join(source(o).rstrip() for o in objs)
    fence = "````" if "```" in body else "```"
    display(Markdown(f"{fence}python\n{body}\n{fence}"))
