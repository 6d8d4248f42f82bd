"""gradlab.listing shows the package's own code on the page: the lines the tests run, without docstrings."""
import pytest

from gradlab import optimizers
from gradlab.listing import show_code, source


def test_source_is_the_method_without_its_docstring():
    text = source(optimizers.Adam.update)
    assert text.startswith("def update(self, x: Tensor, g: Tensor, state: dict) -> None:")
    assert "x -= self.lr * v / (s.sqrt() + self.eps)" in text  # the update itself is there
    assert '"""' not in text


def test_a_docstring_is_dropped_and_the_code_after_it_kept():
    text = source(optimizers.HeavyBall)
    assert text.startswith("class HeavyBall(Optimizer):")
    assert "Polyak" not in text  # from the class docstring
    assert "x += v" in text


def test_the_docstring_can_be_kept():
    assert "Polyak 1964" in source(optimizers.HeavyBall, skip_docstring=False)


def test_something_without_source_says_so():
    with pytest.raises(TypeError, match="no source to show"):
        source(len)


def test_show_code_displays_one_python_listing(monkeypatch):
    shown = []
    monkeypatch.setattr("gradlab.listing.display", shown.append)
    show_code(optimizers.Adagrad.update, optimizers.RMSprop.update)
    (md,) = shown
    text = md.data
    assert text.startswith("```python\n") and text.endswith("\n```")
    assert text.count("def update(") == 2
