"""Check torch names and keyword arguments against the sources of the torch 2.11.0 release (Colab's torch).

torch 2.11 cannot be installed here (no CPU build of it), so this reads it instead: it downloads the
smallest 2.11.0 wheel (macOS arm64, cp311, about 80 MB, never installed), keeps its .py and .pyi files
in ~/.cache/gradlab/torch-2.11.0, and resolves each dotted name statically (module files, top-level
definitions, imports and star imports, class bodies and their bases, the C functions' .pyi stubs, and
the signature line of ``_add_docstr`` docstrings for C functions without a stub).

    .venv/bin/python tests/torch_api/verify_2_11.py torch.func.jvp 'torch.cat(dim=)'   # check some
    .venv/bin/python tests/torch_api/verify_2_11.py --write                             # rewrite the lists

``--write`` extracts every torch name and keyword the package and the notebooks use (the extractor
of tests/test_colab.py), verifies each, and rewrites used_in_2_11.txt and keywords_in_2_11.txt
beside this file; it also rewrites newer_than_2_11.txt: names that the installed torch exposes in the
modules below but 2.11.0 does not define, and keywords its signatures gained since 2.11.0.
It uses the network once (pip download); tests/test_colab.py only reads the lists.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VERSION = "2.11.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gradlab" / f"torch-{VERSION}"
KEYWORD = re.compile(r"^([\w.]+)\((\w+)=\)$")
# where newer_than_2_11.txt looks for names and keywords added after 2.11
MODULES = ["torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.linalg", "torch.func", "torch.optim",
           "torch.optim.lr_scheduler", "torch.autograd", "torch.autograd.graph", "torch.autograd.functional",
           "torch.utils.checkpoint", "torch.utils.flop_counter", "torch.utils.data", "torch.cuda", "torch.random",
           "torch.fft", "torch.special", "torch.backends", "torch.mps", "torch.accelerator"]
CLASSES = ["torch.Tensor", "torch.nn.Module", "torch.optim.Optimizer", "torch.Generator"]


def torch_2_11_sources() -> Path:
    """The unpacked .py/.pyi files of the torch 2.11.0 wheel (downloaded once)."""
    if not (CACHE / "torch" / "version.py").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "--platform", "macosx_11_0_arm64", "--python-version", "3.11", "-d", tmp,
                            f"torch=={VERSION}"], check=True)
            (wheel,) = Path(tmp).glob("torch-*.whl")
            with zipfile.ZipFile(wheel) as z:
                for info in z.infolist():
                    if info.filename.endswith((".py", ".pyi")):
                        z.extract(info, CACHE)
    text = (CACHE / "torch" / "version.py").read_text()
    assert f"__version__ = '{VERSION}'" in text, text
    return CACHE


class Tree:
    """Static look-up of names and keyword arguments in an unpacked torch (its .py and .pyi files)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def files(self, mod: str) -> list[Path]:
        base = self.root.joinpath(*mod.split("."))
        cands = [base.with_suffix(".pyi"), base.with_suffix(".py"), base / "__init__.pyi", base / "__init__.py"]
        return [p for p in cands if p.is_file()]

    def is_module(self, mod: str) -> bool:
        return bool(self.files(mod))

    @lru_cache(maxsize=None)
    def namespace(self, mod: str) -> tuple[dict, list]:
        """name -> bindings, and the modules star-imported, of one module (.py and .pyi together)."""
        names: dict[str, list] = {}
        stars: list[str] = []
        base = self.root.joinpath(*mod.split("."))
        pkg = mod if (base / "__init__.py").is_file() or (base / "__init__.pyi").is_file() else mod.rpartition(".")[0]
        for path in self.files(mod):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
            except SyntaxError:
                continue
            self._collect(tree.body, mod, pkg, names, stars)
        return names, stars

    def _collect(self, body, mod, pkg, names, stars):
        def bind(name, kind, what):
            names.setdefault(name, []).append((kind, what, mod))

        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bind(node.name, "def", node)
            elif isinstance(node, ast.ClassDef):
                bind(node.name, "class", node)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]):
                        if isinstance(e, ast.Name):
                            bind(e.id, "assign", node.value if e is t else None)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                bind(node.target.id, "assign", node.value)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    bind(a.asname or a.name.split(".")[0], "module", a.name if a.asname else a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = pkg.split(".")
                    src = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                for a in node.names:
                    if a.name == "*":
                        stars.append(src)
                    else:
                        bind(a.asname or a.name, "from", (src, a.name))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    self._collect(getattr(node, block, []), mod, pkg, names, stars)
                for handler in getattr(node, "handlers", []):
                    self._collect(handler.body, mod, pkg, names, stars)

    def lookup(self, mod: str, name: str, _seen: set | None = None) -> list:
        """The bindings of ``name`` in module ``mod`` (star imports followed), or its submodule."""
        _seen = set() if _seen is None else _seen
        if mod in _seen:
            return []
        _seen.add(mod)
        names, stars = self.namespace(mod)
        if name in names:
            return names[name]
        for star in stars:
            found = self.lookup(star, name, _seen)
            if found:
                return found
        return [("module", f"{mod}.{name}", mod)] if self.is_module(f"{mod}.{name}") else []

    def resolve(self, dotted: str) -> list:
        """What a dotted name is bound to (def, class, assign or module bindings); [] when it does not exist."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if self.is_module(".".join(parts[:i])):
                break
        else:
            return []
        current = [("module", ".".join(parts[:i]), None)]
        for attr in parts[i:]:
            current = self._attr(current, attr, 0)
            if not current:
                return []
        return self._terminal(current, 0)

    def _terminal(self, bindings, depth):
        out = []
        for kind, what, mod in bindings:
            if depth > 30:
                break
            if kind == "from":
                src, name = what
                if self.is_module(f"{src}.{name}"):
                    out.append(("module", f"{src}.{name}", mod))
                else:
                    out.extend(self._terminal(self.lookup(src, name), depth + 1))
            elif kind == "assign" and what is not None:
                target = self._named_expr(what)
                out.extend((self._resolve_expr(target, mod, depth) if target is not None else [])
                           or [(kind, what, mod)])
            else:
                out.append((kind, what, mod))
        return out

    def _attr(self, bindings, attr, depth):
        for kind, what, mod in self._terminal(bindings, depth):
            found = self.lookup(what, attr) if kind == "module" else \
                self._class_attr(what, mod, attr, depth, set()) if kind == "class" else []
            if found:
                return found
        return []

    def _class_attr(self, cls, mod, attr, depth, seen):
        """A method, nested class or class attribute of ``cls`` or of its bases."""
        if id(cls) in seen or depth > 20:
            return []
        seen.add(id(cls))
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == attr:
                return [("class" if isinstance(node, ast.ClassDef) else "def", node, mod)]
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                return [("assign", node.value, mod)]
        for base in cls.bases:
            for kind, node, bmod in self._resolve_expr(base, mod, depth + 1):
                if kind == "class":
                    found = self._class_attr(node, bmod, attr, depth + 1, seen)
                    if found:
                        return found
        return []

    @staticmethod
    def _named_expr(value):
        """For ``x = _add_docstr(torch._C.f, ...)`` or ``x = torch._C.f``: the expression it names."""
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id in {"_add_docstr", "add_docstr"} and value.args):
            value = value.args[0]
        return value if isinstance(value, (ast.Name, ast.Attribute)) else None

    def _resolve_expr(self, expr, mod, depth):
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name) or depth > 30:
            return []
        bindings = self.lookup(mod, expr.id)
        for attr in reversed(parts):
            bindings = self._attr(bindings, attr, depth + 1) if bindings else []
        return self._terminal(bindings, depth + 1) if bindings else []

    def keywords(self, dotted: str) -> tuple[set, bool] | None:
        """(keyword names, takes **kwargs) of a function or class, or None when no signature is found."""
        return self._keywords(self.resolve(dotted), 0)

    def _keywords(self, bindings, depth):
        kws, varkw, found = set(), False, False
        for kind, node, mod in bindings if depth < 10 else []:
            sig = None
            if kind == "def":
                a = node.args
                sig = {x.arg for x in a.args + a.kwonlyargs}, a.kwarg is not None
            elif kind == "class":
                inits = [("def", n, mod) for n in node.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"]
                bases = (self._keywords(self._resolve_expr(b, mod, depth), depth + 1) for b in node.bases)
                sig = self._keywords(inits, depth + 1) if inits else next((s for s in bases if s), None)
            elif kind == "assign" and node is not None:
                sig = self._docstring_signature(node)
            if sig:
                kws |= sig[0] - {"self"}
                varkw = varkw or sig[1]
                found = True
        return (kws, varkw) if found else None

    @staticmethod
    def _docstring_signature(value):
        """``_add_docstr(C_function, "name(a, b=1, *, c=None) -> Tensor ...")``: a C function with no stub."""
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id in {"_add_docstr", "add_docstr"} and len(value.args) >= 2
                and isinstance(value.args[1], ast.Constant) and isinstance(value.args[1].value, str)):
            return None
        line = next((ln.strip() for ln in value.args[1].value.splitlines() if ln.strip()), "")
        head = line.partition(" -> ")[0]
        _, paren, params = head.partition("(")
        if not paren or not params.endswith(")"):
            return None
        try:
            a = ast.parse(f"def f({params[:-1]}): pass").body[0].args
        except SyntaxError:
            return None
        return {x.arg for x in a.args + a.kwonlyargs}, a.kwarg is not None


def check(tree: Tree, item: str) -> str | None:
    """None when ``item`` (a dotted name, or ``name(keyword=)``) exists in the tree; else why not."""
    m = KEYWORD.match(item)
    if not m:
        return None if tree.resolve(item) else "no such name"
    name, kw = m.groups()
    if not tree.resolve(name):
        return "no such name"
    sig = tree.keywords(name)
    if sig is None:
        return "no signature found"
    if kw not in sig[0]:
        return "takes **kwargs only: check by hand" if sig[1] else f"no keyword {kw!r} (has {sorted(sig[0])})"
    return None


def newer_than(old: Tree) -> list[str]:
    """Public names and keywords of the installed torch (run with .venv's python) that ``old`` lacks."""
    import importlib

    import torch

    new = Tree(Path(torch.__file__).parents[1])
    out = []
    candidates = []
    for m in MODULES:
        mod = importlib.import_module(m)
        candidates += [(f"{m}.{n}", getattr(mod, n)) for n in dir(mod) if not n.startswith("_")]
    for c in CLASSES:
        obj = eval(c, {"torch": torch})
        candidates += [(f"{c}.{n}", getattr(obj, n, None)) for n in dir(obj) if not n.startswith("_")]
    for full, obj in candidates:
        origin = getattr(obj, "__module__", None) or getattr(obj, "__name__", "") or "torch"
        if not str(origin).startswith("torch") or not new.resolve(full):
            continue  # a typing re-export, or nothing this look-up can see in the new sources either
        if not old.resolve(full):
            out.append(full)
        elif callable(obj) and not inspect.ismodule(obj):
            was, now = old.keywords(full), new.keywords(full)
            # docstring signatures are not reliable enough to call a keyword new
            if was and now and not was[1] and not any(k == "assign" for k, _, _ in old.resolve(full)):
                out += [f"{full}({kw}=)" for kw in sorted(now[0] - was[0])]
    return sorted(set(out))


def _uses():
    spec = importlib.util.spec_from_file_location("test_colab", ROOT / "tests" / "test_colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.torch_uses()


def _write(path: Path, header: str, items) -> None:
    path.write_text(header.strip() + "\n" + "".join(f"{i}\n" for i in sorted(items)))


def main(argv: list[str]) -> int:
    tree = Tree(torch_2_11_sources())
    if argv != ["--write"]:
        bad = {item: why for item in argv if (why := check(tree, item))}
        for item in argv:
            print(f"{'MISSING' if item in bad else 'ok':8s}{item}" + (f"  ({bad[item]})" if item in bad else ""))
        return 1 if bad else 0
    names, keywords = _uses()
    bad = {item: why for item in [*names, *keywords] if (why := check(tree, item))}
    if bad:
        for item, why in sorted(bad.items()):
            print(f"NOT IN TORCH {VERSION}: {item} ({why}), used at {names.get(item) or keywords.get(item)}")
        return 1
    how = (f"# Verified against the torch {VERSION} release's own sources: tests/torch_api/verify_2_11.py\n"
           f"# (it reads the .py/.pyi files of the {VERSION} wheel and resolves each entry statically).\n")
    _write(HERE / "used_in_2_11.txt", f"""
# Every torch name that gradlab/ and the notebooks use (tests/test_colab.py extracts them), each one
# checked to exist in torch {VERSION}, the torch that Colab ships.
{how}# Before adding a line, check the name exists in torch {VERSION}: verify_2_11.py NAME.""", names)
    _write(HERE / "keywords_in_2_11.txt", f"""
# Every keyword argument that gradlab/ and the notebooks pass to a torch function or class, as
# name(keyword=), each one checked to be a parameter of that callable in torch {VERSION}.
{how}# Before adding a line, check it: verify_2_11.py 'name(keyword=)'.""", keywords)
    import torch

    _write(HERE / "newer_than_2_11.txt", f"""
# Names and keyword arguments that torch {torch.__version__} (the local build) has and torch {VERSION} has not,
# in the modules a chapter is likely to use: each is an error in tests/test_colab.py, whatever the
# allow-lists say. Made by verify_2_11.py --write from the installed torch and the {VERSION} sources.""",
           newer_than(tree))
    print(f"{len(names)} names and {len(keywords)} keywords verified against torch {VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
