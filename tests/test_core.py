"""The package's single places: device choice, seeding, the mode switches and the plot style."""
import matplotlib as mpl
import numpy as np
import pytest
import torch

import gradlab
from gradlab import device as device_mod
from gradlab.modes import fast_mode, pick, static_mode
from gradlab.seeding import generator, seed_everything
from gradlab.style import LINESTYLES, MARKERS, PALETTE, use_book_style


def test_device_falls_back_to_cpu_without_cuda(monkeypatch):
    device_mod.pick_device.cache_clear()
    monkeypatch.delenv("GRADLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_mod.pick_device() == torch.device("cpu")
    device_mod.pick_device.cache_clear()


def test_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("GRADLAB_DEVICE", raising=False)
    device_mod.pick_device.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_mod.pick_device().type == "cuda"
    device_mod.pick_device.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_mod.pick_device().type == "mps"
    device_mod.pick_device.cache_clear()


def test_device_override(monkeypatch):
    device_mod.pick_device.cache_clear()
    monkeypatch.setenv("GRADLAB_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_mod.pick_device() == torch.device("cpu")
    device_mod.pick_device.cache_clear()


def test_same_seed_same_numbers_different_seed_different_numbers():
    seed_everything(3)
    a = (torch.randn(5), np.random.rand(5))
    seed_everything(3)
    b = (torch.randn(5), np.random.rand(5))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert torch.equal(torch.randn(4, generator=generator(7)), torch.randn(4, generator=generator(7)))
    assert not torch.equal(torch.randn(4, generator=generator(7)), torch.randn(4, generator=generator(8)))


def test_generator_does_not_touch_the_global_stream():
    seed_everything(0)
    expected = torch.randn(3)
    seed_everything(0)
    torch.randn(10, generator=generator(1))
    assert torch.equal(torch.randn(3), expected)


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_fast_mode_is_one_environment_variable(monkeypatch, value, expected):
    monkeypatch.setenv("GRADLAB_FAST", value)
    assert fast_mode() is expected
    assert pick("full", "fast") == ("fast" if expected else "full")


def test_static_mode_switch(monkeypatch):
    monkeypatch.setenv("GRADLAB_STATIC", "1")
    assert static_mode()
    monkeypatch.delenv("GRADLAB_STATIC")
    assert not static_mode()


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_style_series_differ_in_more_than_colour():
    # in grayscale or for a colour-blind reader, line style and marker still tell series apart
    n = len(PALETTE)
    assert len(set(map(str, LINESTYLES[:n]))) == n and len(set(MARKERS[:n])) == n
    # the first four colours (the ones most plots use) also differ in lightness
    lum = sorted(_luminance(c) for c in PALETTE[:4])
    assert min(b - a for a, b in zip(lum, lum[1:])) > 0.08


def test_book_style_is_large_enough_for_a_projector():
    use_book_style()
    assert mpl.rcParams["font.size"] >= 12 and mpl.rcParams["lines.linewidth"] >= 2


def test_import_has_no_side_effects():
    import subprocess
    import sys

    code = ("import torch, matplotlib as mpl; s = torch.initial_seed(); fs = mpl.rcParams['font.size'];"
            "import gradlab, gradlab.widgets; assert torch.initial_seed() == s; assert mpl.rcParams['font.size'] == fs")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_setup_returns_the_picked_device(capsys):
    assert gradlab.setup(seed=1) == gradlab.pick_device()
    assert "device:" in capsys.readouterr().out
