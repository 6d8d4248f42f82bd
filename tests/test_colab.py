"""Colab's versions (issue item 6): the package and every chapter must work with what Colab ships.

Colab has Python 3.13, torch 2.11, ipywidgets 7.7.1, IPython 7.34, ipykernel 6.17, matplotlib 3.10.0,
numpy 2.1.3 and scikit-learn 1.6.1, and a chapter installs gradlab there with ``--no-deps``. Everything
but Python 3.13 and that torch build is installed here, in .venv-colab (``make colab-env``, which
``make test`` runs; pinned in tests/colab.txt), and these tests run the chapters and the package's
own tests inside it. torch 2.11 itself cannot be installed here, so the torch names and keyword
arguments the code uses are checked against lists verified on torch 2.11's sources (tests/torch_api/).
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-colab"
PYTHON = VENV / "bin" / "python"
LOCK = ROOT / "tests" / "colab.txt"
TORCH_API = ROOT / "tests" / "torch_api"
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
HOW = ("`make colab-env` creates it (`make test` does too): a Python 3.11 virtualenv with the pinned "
       "tests/colab.txt, then gradlab itself with `pip install --no-deps --no-build-isolation -e .`")

# What Colab ships. Installed here exactly, except Python (3.11 here) and torch (the local CPU build).
COLAB = {"python": "3.13", "torch": "2.11.0", "ipywidgets": "7.7.1", "ipython": "7.34.0", "ipykernel": "6.17.1",
         "matplotlib": "3.10.0", "numpy": "2.1.3", "scikit-learn": "1.6.1"}
AS_IN_COLAB = ["ipywidgets", "ipython", "ipykernel", "matplotlib", "numpy", "scikit-learn"]
# The package's own tests, run again under Colab's versions (the widget tests apart, below). The rest of
# tests/ checks the website, the packaging and the repository, which need .venv (jupyter-book, a browser).
PACKAGE_TESTS = ["test_autodiff.py", "test_backprop.py", "test_core.py", "test_descent.py", "test_graph.py",
                 "test_landscapes.py", "test_livefigure.py", "test_memory.py", "test_stochastic.py"]
WIDGET_TESTS = ["test_interact.py", "test_widgets.py"]

colab = pytest.mark.xdist_group("colab")  # one worker runs them one after another


def pins(path: Path = LOCK) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = r.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not pinned"
            out[canonicalize_name(r.name)] = spec.version
    return out


def colab_env(**extra: str) -> dict[str, str]:
    """The environment of a process in .venv-colab: this run's variables, less those that would leak
    .venv (or this pytest run) into it, in fast mode."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "MPLBACKEND", "GRADLAB_STATIC", "JUPYTER"))}
    env.update(PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", GRADLAB_FAST="1",
               PYTHONDONTWRITEBYTECODE="1", PYDEVD_DISABLE_FILE_VALIDATION="1", **extra)
    return env


@pytest.fixture(scope="module")
def colab_python() -> str:
    if not PYTHON.is_file() or not (VENV / ".gradlab-installed").is_file():
        pytest.fail(f"{VENV} is missing or unfinished: {HOW}", pytrace=False)
    stamp = VENV / ".requirements-installed"
    if stamp.is_file() and stamp.stat().st_mtime < LOCK.stat().st_mtime:
        pytest.fail(f"{VENV} is older than tests/colab.txt: run `make colab-env` to rebuild it", pytrace=False)
    return str(PYTHON)


def run_in_colab(args: list[str], timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), *args], cwd=kwargs.pop("cwd", ROOT), env=kwargs.pop("env", colab_env()),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


# --- (c) the environment really is Colab's ------------------------------------------------------------

@colab
def test_the_environment_has_colabs_versions(colab_python):
    lock = pins()
    for name in AS_IN_COLAB:
        assert lock.get(name) == COLAB[name], f"tests/colab.txt must pin Colab's {name}=={COLAB[name]}"
    (torch_pin,) = re.findall(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert lock["torch"] == torch_pin, "tests/colab.txt must pin the local CPU torch build, as requirements.txt does"

    probe = ("import json, sys, importlib.metadata as m; print(json.dumps({'python': list(sys.version_info[:2]), "
             "'dists': {d.metadata['Name']: d.version for d in m.distributions()}}))")
    out = run_in_colab(["-c", probe], timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["python"] == [3, 11], f"{VENV} runs Python {found['python']}, not 3.11: {HOW}"
    installed = {canonicalize_name(k): v for k, v in found["dists"].items()}
    for name in AS_IN_COLAB:
        assert installed.get(name) == COLAB[name], (
            f"{VENV} has {name} {installed.get(name)}, Colab has {COLAB[name]}: rebuild it with `make colab-env`")
    assert Version(installed["torch"]).public == torch_pin, installed["torch"]
    # the whole environment is the lock file, nothing more, nothing less
    drift = {n: (installed.get(n), v) for n, v in lock.items()
             if installed.get(n) is None or Version(installed[n]).public != Version(v).public}
    extra = sorted(set(installed) - set(lock) - {"pip", "gradlab"})
    assert not drift and not extra, (f"{VENV} differs from tests/colab.txt (installed, pinned): {drift}; "
                                     f"not pinned: {extra}. Rebuild it with `make colab-env`")


@colab
def test_installing_gradlab_with_its_dependencies_changes_none_of_colabs_packages(colab_python, tmp_path):
    """Colab installs gradlab with --no-deps; without it, pip must find every requirement already met."""
    check = run_in_colab(["-m", "pip", "check"], timeout=300)
    assert check.returncode == 0, f"pip check in {VENV}:\n{check.stdout}{check.stderr}"
    src = tmp_path / "src"  # a copy, so no build folder lands in the working tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "gradlab", src / "gradlab", ignore=shutil.ignore_patterns("__pycache__"))
    report = tmp_path / "report.json"
    # --no-index: what is installed must satisfy everything; nothing may be fetched
    dry = run_in_colab(["-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation", "--quiet",
                        "--report", str(report), str(src)], timeout=600)
    assert dry.returncode == 0, ("gradlab's declared dependencies (pyproject.toml) are not met by Colab's "
                                 f"versions:\n{dry.stderr[-3000:]}")
    changes = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert set(changes) == {"gradlab"}, f"`pip install gradlab` would change Colab's packages: {changes}"


# --- (d) the declared requirements admit Colab's versions ---------------------------------------------

def test_declared_requirements_admit_colabs_versions():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requires_python = SpecifierSet(project.get("requires-python", ""))
    for py in (COLAB["python"], "3.11"):
        assert requires_python.contains(py), f"requires-python {requires_python} excludes Python {py}"
    versions = [c.rsplit("::", 1)[1].strip() for c in project.get("classifiers", [])
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert not versions or COLAB["python"] in versions, f"classifiers list Python {versions}, not Colab's 3.13"
    colab_markers = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux",
                     "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                     "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    for line in project.get("dependencies", []):
        r = Requirement(line)
        if r.marker is not None and not r.marker.evaluate(colab_markers):
            continue
        name = canonicalize_name(r.name)
        assert name in COLAB, (f"{r}: Colab installs gradlab with --no-deps, so it gets only what Colab ships; "
                               f"check that Colab has {r.name}, then add its version to COLAB in {__file__}")
        assert r.specifier.contains(COLAB[name], prereleases=True), f"{r} excludes Colab's {name} {COLAB[name]}"


# Python 3.13 cannot run the tests here (no torch for it without CUDA): at least import nothing it removed.
REMOVED_IN_3_13 = {"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap", "msilib",
                   "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib"}


def test_no_module_that_python_3_13_removed():
    found = []
    for path, text in _sources():
        for node in ast.walk(ast.parse(text)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {m}" for m in mods
                      if m.split(".")[0] in REMOVED_IN_3_13]
    assert not found, "Colab runs Python 3.13, which removed these modules (PEP 594):\n" + "\n".join(found)


# --- (a) every chapter, top to bottom, under Colab's versions -----------------------------------------

# Run in .venv-colab by nbclient: the notebook with a first cell that shows every warning raised from
# gradlab's modules, and a last cell that reports what the kernel ran on; writes a JSON report.
RUN_NOTEBOOK = r'''
import json, sys, traceback
from pathlib import Path
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path, report = Path(sys.argv[1]), Path(sys.argv[2])
nb = nbformat.read(path, as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell(
    "import warnings\nwarnings.filterwarnings('default', module=r'gradlab(\\.|$)')"))
nb.cells.append(nbformat.v4.new_code_cell(
    "import json, sys, importlib.metadata as _m, matplotlib, gradlab\n"
    "print(json.dumps({'executable': sys.executable, 'gradlab': gradlab.__file__,"
    " 'backend': matplotlib.get_backend(),"
    " 'versions': {d: _m.version(d) for d in ('ipywidgets', 'ipython', 'ipykernel', 'matplotlib',"
    " 'numpy', 'scikit-learn', 'torch')}}))"))
error = None
try:
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
except CellExecutionError as exc:
    error = str(exc)
except Exception:
    error = traceback.format_exc()
stderr, probe = [], None
for i, cell in enumerate(nb.cells):
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            stderr.append({"cell": i - 1, "text": out["text"]})
        elif i == len(nb.cells) - 1 and out.get("output_type") == "stream":
            probe = json.loads(out["text"].strip().splitlines()[-1])
report.write_text(json.dumps({"error": error, "stderr": stderr, "probe": probe}))
'''
OURS = re.compile(r"gradlab|ipykernel_\d+|<ipython-input-")  # gradlab's modules, or the chapter's own cells


@colab
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_chapter_runs_top_to_bottom_under_colabs_versions(colab_python, notebook, tmp_path):
    report = tmp_path / "report.json"
    # JUPYTER_PATH first: the kernel is .venv-colab's own python3, whatever other kernels are installed
    env = colab_env(JUPYTER_PATH=str(VENV / "share" / "jupyter"))
    run = run_in_colab(["-c", RUN_NOTEBOOK, str(ROOT / notebook), str(report)], env=env, cwd=ROOT / "notebooks")
    if run.returncode != 0 or not report.is_file():
        pytest.fail(f"running {notebook} in {VENV} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}", pytrace=False)
    result = json.loads(report.read_text())
    if result["error"] is not None:
        pytest.fail(f"{notebook} fails under Colab's versions:\n{result['error'][-6000:]}", pytrace=False)
    probe = result["probe"]
    assert probe and Path(probe["executable"]).parent == VENV / "bin", f"the kernel was not {VENV}'s: {probe}"
    assert Path(probe["gradlab"]).parent == ROOT / "gradlab", f"the kernel imported another gradlab: {probe}"
    assert probe["backend"].endswith("backend_inline"), probe["backend"]
    for name in AS_IN_COLAB:
        assert probe["versions"][name] == COLAB[name], probe["versions"]
    ours = [f"cell {s['cell']}:\n{s['text']}" for s in result["stderr"] if OURS.search(s["text"])]
    assert not ours, f"{notebook} writes warnings to stderr under Colab's versions:\n" + "\n".join(ours)
    for s in result["stderr"]:  # from elsewhere (a library's own warnings): shown, not failed
        warnings.warn(f"{notebook}, cell {s['cell']}, stderr under Colab's versions:\n{s['text'][:2000]}")


# --- (b) the widget tests and the package's tests, under Colab's versions ------------------------------

def _pytest_in_colab(files: list[str], *args: str) -> None:
    paths = [f"tests/{f}" for f in files if (ROOT / "tests" / f).is_file()]
    assert paths, files
    cmd = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::Warning:gradlab", *args, *paths]
    run = run_in_colab(cmd)
    if run.returncode != 0 or " passed" not in run.stdout:
        pytest.fail(f"under Colab's versions ({VENV}):\n{run.stdout[-6000:]}{run.stderr[-2000:]}\n"
                    f"Again by hand: env -u PYTHONPATH GRADLAB_FAST=1 .venv-colab/bin/python {' '.join(cmd)}\n"
                    "(a test that fails in .venv too is not about Colab's versions)", pytrace=False)


@colab
def test_every_widget_works_with_colabs_ipywidgets(colab_python):
    """Every widget built and fired under ipywidgets 7.7.1 and ipykernel 6.17, and the widget layer's own tests.
    (The kernel-free HTML tests are the website's, which .venv builds; Colab shows live widgets. The controls at
    their extremes exercise the experiments' arithmetic, with the same torch build as .venv, and run there; under
    Colab's versions they cost over two minutes of the suite. What differs in Colab (ipywidgets, IPython, matplotlib,
    numpy, scikit-learn) is reached by building and firing every widget here and by running every chapter above.)"""
    _pytest_in_colab(WIDGET_TESTS, "-k", "not kernel_free and not extremes")


@colab
def test_the_package_tests_pass_under_colabs_versions(colab_python):
    _pytest_in_colab(PACKAGE_TESTS)


# --- torch: no API newer than Colab's 2.11 --------------------------------------------------------------

_MAGIC = re.compile(r"^(\s*)[%!].*$", re.M)


class _TorchUses(ast.NodeVisitor):
    """Dotted torch names (attribute chains rooted at torch or an alias of a torch module or name, and
    ``from torch... import x``) and the keyword arguments of calls to them. ``getattr(torch.x, "y", default)``
    is a guarded look-up, not a use of ``torch.x.y``."""

    def __init__(self, where: str):
        self.where, self.alias = where, {}
        self.names: dict[str, str] = {}
        self.keywords: dict[str, str] = {}

    def _add(self, table: dict, key: str, node: ast.AST) -> None:
        table.setdefault(key, f"{self.where}:{node.lineno}")

    def visit_Import(self, node):
        for a in node.names:
            if a.name == "torch" or a.name.startswith("torch."):
                self.alias[a.asname or "torch"] = a.name if a.asname else "torch"
                self._add(self.names, a.name, node)

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module and (node.module == "torch" or node.module.startswith("torch.")):
            for a in node.names:
                self.alias[a.asname or a.name] = f"{node.module}.{a.name}"
                self._add(self.names, f"{node.module}.{a.name}", node)

    def resolve(self, node) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.alias:
            return ".".join([self.alias[node.id], *reversed(parts)])
        return None

    def visit_Attribute(self, node):
        full = self.resolve(node)
        if full:
            self._add(self.names, full, node)  # the whole chain, not its prefixes
        else:
            self.generic_visit(node)

    def visit_Call(self, node):
        full = self.resolve(node.func)
        if full:
            for kw in node.keywords:
                if kw.arg:
                    self._add(self.keywords, f"{full}({kw.arg}=)", node)
        self.generic_visit(node)


def _sources(root: Path = ROOT) -> list[tuple[Path, str]]:
    """gradlab's modules, and each notebook's code cells as one module (magics made ``pass``)."""
    sources = [(p, p.read_text()) for p in sorted((root / "gradlab").rglob("*.py"))]
    for p in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(p.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        sources.append((p, "\n".join(_MAGIC.sub(r"\1pass", c) for c in code)))  # a whole chapter is one scope
    return sources


def torch_uses(root: Path = ROOT) -> tuple[dict[str, str], dict[str, str]]:
    """Every torch name, and every ``name(keyword=)``, used in gradlab/ and the notebooks' code cells."""
    names, keywords = {}, {}
    for path, text in _sources(root):
        uses = _TorchUses(path.relative_to(root).as_posix())
        uses.visit(ast.parse(text))
        for k, v in uses.names.items():
            names.setdefault(k, v)
        for k, v in uses.keywords.items():
            keywords.setdefault(k, v)
    return names, keywords


def _listed(name: str) -> set[str]:
    return {ln.strip() for ln in (TORCH_API / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")}


def test_no_torch_api_newer_than_colabs_2_11():
    names, keywords = torch_uses()
    newer = _listed("newer_than_2_11.txt")
    problems = []
    for table, allowed, kind in ((names, _listed("used_in_2_11.txt"), "used_in_2_11.txt"),
                                 (keywords, _listed("keywords_in_2_11.txt"), "keywords_in_2_11.txt")):
        for item, where in sorted(table.items(), key=lambda kv: kv[1]):
            if item in newer:
                problems.append(f"{where}: {item} is newer than torch 2.11 (tests/torch_api/newer_than_2_11.txt)")
            elif item not in allowed:
                problems.append(f"{where}: {item} is not in tests/torch_api/{kind}")
    assert not problems, "\n".join(problems) + (
        "\n\nColab ships torch 2.11. Verify that each name (or keyword) exists in torch 2.11 before adding it "
        "to the list: `.venv/bin/python tests/torch_api/verify_2_11.py NAME 'NAME(keyword=)'` checks the "
        "2.11.0 release's own sources (`--write` rewrites the lists). Otherwise use an API that 2.11 has.")


def test_the_torch_name_extractor_follows_aliases_and_skips_guarded_lookups():
    uses = _TorchUses("x.py")
    uses.visit(ast.parse(
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nfrom torch.func import jvp as J\n"
        "x = F.cross_entropy(a, b, reduction='sum')\ny = torch.linalg.inv(torch.eye(2, dtype=torch.float64))\n"
        "class M(nn.Module): pass\nJ(f, (x,), (x,))\nz = torch.finfo(x.dtype).eps\n"
        "mps = getattr(torch.backends, 'mps', None)\nw = x.abs()\n"))
    assert set(uses.names) == {"torch", "torch.nn.functional", "torch.nn", "torch.func.jvp",
                               "torch.nn.functional.cross_entropy", "torch.linalg.inv", "torch.eye", "torch.float64",
                               "torch.nn.Module", "torch.finfo", "torch.backends"}
    assert set(uses.keywords) == {"torch.nn.functional.cross_entropy(reduction=)", "torch.eye(dtype=)"}
