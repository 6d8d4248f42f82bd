"""Chapter 1's exercises ask before they answer: each exercise's code cell hands the reader's prediction and
the measurement (as a function) to gradlab.exercises.check, and prints nothing itself, so the cell run
with no prediction (the website, a first read in Colab) shows no answer."""
import json
import re
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_gradient_descent.ipynb"
EXERCISE = re.compile(r"^\*\*Exercise 1\.(\d+) ", re.M)


def exercise_cells() -> dict[int, str]:
    """The code cell that follows each exercise's task, by exercise number."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    out = {}
    for i, cell in enumerate(cells[:-1]):
        found = EXERCISE.findall("".join(cell["source"])) if cell["cell_type"] == "markdown" else []
        if found and cells[i + 1]["cell_type"] == "code":
            out[int(found[-1])] = "".join(cells[i + 1]["source"])
    return out


def test_every_exercise_asks_through_check_and_prints_nothing_itself():
    cells = exercise_cells()
    assert sorted(cells) == [1, 2, 3, 4]
    for number, source in cells.items():
        assert "check(" in source and "lambda:" in source, f"Exercise 1.{number} must call check(prediction, lambda: ...)"
        assert "print(" not in source, f"Exercise 1.{number} prints something before the reader predicts"
        assert re.search(r"^your_\w+(, your_\w+)* = None(, None)*\s", source, re.M), \
            f"Exercise 1.{number} must start with the prediction left as None"
