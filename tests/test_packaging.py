"""What Colab installs: a wheel of gradlab with every module and asset, and loose requirements
that Colab's own torch, matplotlib and ipywidgets 7.x already satisfy."""
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # built from a copy, so setuptools' build/ folder never lands in the working tree
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "gradlab", src / "gradlab", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    (path,) = out.glob("gradlab-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_every_module_and_the_kernel_free_script(wheel):
    names = set(wheel.namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gradlab").rglob("*") if p.suffix in {".py", ".js"}}
    assert sources and sources <= names, sorted(sources - names)


def test_requirements_are_loose_enough_for_colab(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    reqs = [Requirement(r) for r in Parser().parsestr(wheel.read(meta).decode()).get_all("Requires-Dist")]
    by_name = {r.name.lower(): r for r in reqs}
    assert {"torch", "matplotlib", "ipywidgets", "numpy", "scikit-learn"} <= set(by_name)
    for r in reqs:
        assert not any(s.operator in {"==", "<", "<=", "~=", "==="} for s in r.specifier), f"{r} pins or caps"
    # Colab ships ipywidgets 7.7.1 (tested in test_colab.py); older torch releases are fine too
    assert by_name["ipywidgets"].specifier.contains(Version("7.7.1"))
    assert by_name["torch"].specifier.contains(Version("2.1.0"))


def test_the_pinned_build_environment_never_asks_for_a_cuda_torch():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    torch_lines = [ln for ln in lines if ln.lower().startswith("torch")]
    assert torch_lines == ["torch==2.13.0"]  # the CPU build a fresh machine already has


def test_xdist_keeps_each_group_on_one_worker(tmp_path):
    """`make test` runs `--dist loadgroup` so the book is built once and the Colab and JupyterLab tests each
    share one environment; pytest 9.2 with pytest-xdist 3.8 silently ignores the groups (xdist#1386)."""
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(
            "import os, pytest\n"
            "@pytest.mark.xdist_group('g')\n"
            "@pytest.mark.parametrize('i', range(4))\n"
            f"def test_grouped(i):\n    open('{tmp_path}/worker_{name}' + str(i), 'w').write(os.environ['PYTEST_XDIST_WORKER'])\n"
            "def test_free():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
                           "no:cacheprovider", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = {p.read_text() for p in tmp_path.glob("worker_*")}
    assert len(list(tmp_path.glob("worker_*"))) == 8
    assert len(workers) == 1, f"one xdist group ran on several workers: {sorted(workers)}"
