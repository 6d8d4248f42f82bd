"""The predict-then-run check: no answer before a prediction, clear words for bad input."""
import math

import pytest
import torch

from gradlab.exercises import ASK, check, judge


def _never():
    raise AssertionError("the measurement ran before the reader predicted")


@pytest.mark.parametrize("prediction", [None, ..., {"a": None, "b": 3}])
def test_no_prediction_asks_and_does_not_measure(prediction):
    v = judge(prediction, _never)
    assert v.right is None and v.message == ASK and v.measured is None


def test_printed_output_without_prediction_holds_no_answer(capsys):
    check(None, lambda: 123456)
    out = capsys.readouterr().out
    assert "123456" not in out and "prediction" in out


def test_number_within_relative_tolerance():
    assert judge(36, lambda: 40, rel_tol=0.1).right is True   # |36-40| = 4 <= 0.1 * 40
    assert judge(35, lambda: 40, rel_tol=0.1).right is False  # 5 > 4
    msg = judge(35, lambda: 40).message
    assert "40" in msg and "35" in msg and msg.startswith("Not quite")


def test_absolute_tolerance_and_tensor_values():
    assert judge(0.02, lambda: torch.tensor(0.0), abs_tol=0.05).right is True
    assert judge(torch.tensor(3.0), lambda: 3, rel_tol=0).right is True


def test_dict_of_predictions():
    assert judge({"with": 4, "without": 31}, lambda: {"with": 4.0, "without": 30.9}).right is True
    v = judge({"with": 4, "without": 4}, lambda: {"with": 4.0, "without": 30.9})
    assert v.right is False and "without" in v.message
    v = judge({"with": 4}, lambda: {"with": 4.0, "without": 30.9})
    assert v.right is None and "without" in v.message


def test_choices_case_insensitive_and_unknown_choice():
    assert judge("Grows", lambda: "grows", choices=["grows", "shrinks"]).right is True
    assert judge("shrinks", lambda: "grows", choices=["grows", "shrinks"]).right is False
    v = judge("explodes", lambda: "grows", choices=["grows", "shrinks"])
    assert v.right is None and "'grows'" in v.message


@pytest.mark.parametrize("bad", ["forty", True, math.nan, [1, 2]])
def test_unusable_prediction_says_so(bad):
    v = judge(bad, lambda: 40)
    assert v.right is None and "not a finite number" in v.message


def test_measure_must_be_callable():
    with pytest.raises(TypeError, match="lambda"):
        judge(3, 40)


def test_infinite_measurement_compares_exactly():
    assert judge(math.inf, lambda: math.inf).right is None  # an infinite guess is not a number to compare
    assert judge(5, lambda: math.inf).right is False
