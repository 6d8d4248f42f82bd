"""Colab ships ipywidgets 7.x: every widget of the book must build and fire under 7.7.1 too."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IPYW7 = ROOT / ".venv" / "ipywidgets7"


def test_every_widget_works_with_ipywidgets_7():
    assert IPYW7.is_dir(), f"{IPYW7} is missing: `make test` installs tests/ipywidgets7.txt there"
    env = {**os.environ, "PYTHONPATH": str(IPYW7), "GRADLAB_FAST": "1"}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("7."), version
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         "tests/test_interact.py", "tests/test_widgets.py", "-k", "interact or callback_fires"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
