"""The repository address is written once, in _config.yml: every notebook's Colab install cell
agrees with it, and no other committed file repeats it (README.md may mention it)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {"_config.yml", "README.md"}  # and each notebook's first cell, checked below
SKIP_DIRS = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".jupyter_cache"}


def repository_url() -> str:
    return yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def committed_files() -> list[str]:
    """Files git tracks or would track (not ignored); without git, the tree minus build folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        return sorted(set(out.split("\n")) - {""})
    except (OSError, subprocess.CalledProcessError):
        return sorted(p.relative_to(REPO).as_posix() for p in REPO.rglob("*")
                      if p.is_file() and not SKIP_DIRS & set(p.relative_to(REPO).parts))


NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_address_is_a_github_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository_url())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_install_cell_uses_the_configured_address(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    installs = re.findall(r"git\+(https://[^\s\"'@]+)", first)
    assert installs == [repository_url()], f"{path.name}: installs from {installs}, _config.yml says {repository_url()}"
    for cell in nb.cells[1:]:
        assert _slug() not in cell.source, f"{path.name}: the address appears outside the setup cell"


def _slug() -> str:
    return repository_url().removeprefix("https://")


def test_no_other_file_repeats_the_address():
    slug = _slug()
    owner_repo = slug.removeprefix("github.com/")
    offenders = []
    for rel in committed_files():
        path = REPO / rel
        if rel in ALLOWED or rel.startswith("notebooks/") and rel.endswith(".ipynb") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if slug in text or f"{owner_repo}.git" in text or f"/{owner_repo}/" in text:
            offenders.append(rel)
    assert not offenders, f"the repository address is repeated in {offenders}: read it from _config.yml instead"
