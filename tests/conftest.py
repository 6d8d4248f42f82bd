"""Shared test setup: every test runs in fast mode on the CPU unless it says otherwise."""
import os

os.environ.setdefault("GRADLAB_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One thread per process. The suite runs two workers beside the book build, the JupyterLab and the Colab
# kernels, all on two cores; the experiments' tensors are tiny, and with every process asking torch for a
# thread per core the OpenMP threads spin against each other: the same test took 2.5 times longer with
# three processes at torch's default than at one thread each (benchmarks/README.md). Set before torch is
# imported, so the kernels and subprocesses the tests start inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


# --- The website, built once per test session (tests/test_book.py and tests/test_site.py) ---
import fcntl
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # in case a plugin imported torch before the variables above were set

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BuiltBook:
    """A finished ``jupyter-book build``: its exit status, log, HTML folder and duration."""

    returncode: int
    log: str
    html: Path
    seconds: float


def build_book(source: Path, out: Path, *, strict: bool = True, fast: bool = True, timeout: float = 1200) -> BuiltBook:
    """Run ``jupyter-book build`` on ``source`` into ``out`` (warnings are errors when ``strict``)."""
    env = {**os.environ}
    env.pop("MPLBACKEND", None)  # the notebooks' kernels need their inline backend to draw figures
    env.pop("GRADLAB_STATIC", None)  # the book's own extension sets it
    if fast:
        env["GRADLAB_FAST"] = "1"
    else:
        env.pop("GRADLAB_FAST", None)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(source), "--path-output", str(out)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return BuiltBook(proc.returncode, proc.stdout + proc.stderr, out / "_build" / "html", time.perf_counter() - t0)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The book built in fast mode with warnings as errors, once even across xdist workers."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers of this session share
    record = shared / "built_book.json"
    with open(shared / "built_book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            data = json.loads(record.read_text())
            return BuiltBook(data["returncode"], data["log"], Path(data["html"]), data["seconds"])
        book = build_book(REPO, shared / "book")
        record.write_text(json.dumps({"returncode": book.returncode, "log": book.log,
                                      "html": str(book.html), "seconds": book.seconds}))
        return book


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, offline-ready (tests/test_site.py, tests/test_lab.py)."""
    from labdriver import CHROMIUM, launch_browser

    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: run `apt-get install -y chromium` (as root), "
                    "or use `make test`, which installs it.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()
