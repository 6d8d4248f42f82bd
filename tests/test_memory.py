"""Chapter 2: what autograd saves for backward, and gradient checkpointing's trade."""
from dataclasses import replace

import pytest
import torch
from torch.utils.checkpoint import checkpoint_sequential

from gradlab.memory import MemoryConfig, PeakMemory, build_mlp, checkpoint_counts, measure_memory, sweep

BASE = MemoryConfig(depth=8, width=16, batch=4)
ONE = BASE.batch * BASE.width * 4  # bytes of one float32 activation matrix


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_without_checkpointing_one_activation_per_layer_plus_the_input_is_kept(activation):
    # Linear saves its input, tanh/ReLU save their output; the output is the next Linear's input
    # (one storage, counted once), so depth + 1 matrices of batch × width floats in all.
    run = measure_memory(replace(BASE, activation=activation))
    assert run.activation_bytes == (BASE.depth + 1) * ONE
    assert run.layer_calls_forward == run.layer_calls_total == BASE.depth


def test_saved_memory_grows_linearly_with_depth_and_batch():
    by_depth = [r.activation_bytes for r in sweep(BASE, "depth", [2, 4, 8])]
    assert by_depth == [3 * ONE, 5 * ONE, 9 * ONE]
    by_batch = [r.activation_bytes for r in sweep(BASE, "batch", [4, 8, 16])]
    assert by_batch == [9 * ONE, 18 * ONE, 36 * ONE]


@pytest.mark.parametrize("segments", [2, 4])
def test_checkpointing_saves_memory_and_costs_recomputation(segments):
    off = measure_memory(BASE)
    on = measure_memory(replace(BASE, segments=segments))
    per = BASE.depth // segments
    # kept: the input of each checkpointed segment, plus the last (uncheckpointed) segment in full
    assert on.activation_bytes == ((segments - 1) + per + 1) * ONE < off.activation_bytes
    # every checkpointed segment runs its layers twice; the last one runs once
    assert on.layer_calls_total == BASE.depth + (segments - 1) * per > off.layer_calls_total


def test_one_segment_is_no_checkpointing():
    # checkpoint_sequential never checkpoints its last segment; with one segment that is everything
    assert measure_memory(replace(BASE, segments=1)).activation_bytes == measure_memory(BASE).activation_bytes


def test_checkpointing_changes_no_gradient():
    net = build_mlp(BASE)
    x = torch.randn(BASE.batch, BASE.width)
    net(x).square().mean().backward()
    plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    checkpoint_sequential(net, 4, x, use_reentrant=False).square().mean().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-7) for a, p in zip(plain, net.parameters()))


def test_measurements_are_deterministic_and_bad_configs_are_explained():
    a, b = measure_memory(replace(BASE, segments=2)), measure_memory(replace(BASE, segments=2))
    assert (a.activation_bytes, a.per_layer_bytes, a.layer_calls_total) == (
        b.activation_bytes, b.per_layer_bytes, b.layer_calls_total)
    assert sum(a.per_layer_bytes) == a.activation_bytes
    with pytest.raises(ValueError, match="segments"):
        measure_memory(replace(BASE, segments=9))


def test_peak_tracker_follows_python_lifetimes():
    n = 1000 * 4  # bytes of a float32 vector of 1000
    with PeakMemory() as mem:
        a = torch.ones(1000)
        b = a * 2
        del a  # freed: the peak stays at two vectors
        c = b + 1
        view = c[:10]  # a view is no new memory
        del b
        assert mem.live == 1 * n
    assert mem.peak == 2 * n
    del c, view
    assert mem.live == 0


def test_peak_holds_the_saved_activations_and_the_gradients():
    # activations dominate at a large batch: checkpointing lowers the peak; at a small batch the weights'
    # gradients dominate and the peak hardly moves (the chapter's printed comparison)
    wide = MemoryConfig(depth=8, width=16, batch=256)
    grads = sum(p.numel() for p in build_mlp(wide).parameters()) * 4
    off, on = measure_memory(wide), measure_memory(replace(wide, segments=4))
    assert off.peak_bytes >= off.activation_bytes + grads - 256 * 16 * 4  # the input batch is freed at the end
    assert on.peak_bytes < 0.8 * off.peak_bytes
    narrow = MemoryConfig(depth=16, width=64, batch=8)
    off, on = measure_memory(narrow), measure_memory(replace(narrow, segments=4))
    assert on.activation_bytes < 0.6 * off.activation_bytes
    assert on.peak_bytes == pytest.approx(off.peak_bytes, rel=0.05)


def test_three_segments_split_as_checkpoint_sequential_documents():
    # Exercise 2.6: 32 modules // 3 = 10 modules (5 blocks) in each checkpointed segment, the last takes 6 blocks
    depth, s = 16, 3
    per = (2 * depth // s) // 2
    last = depth - (s - 1) * per
    counts = checkpoint_counts(MemoryConfig(depth=depth, width=16, batch=4, segments=s))
    assert (per, last) == (5, 6)
    assert counts == {"matrices kept": (s - 1) + last + 1, "Linear calls": depth + (s - 1) * per} == \
        {"matrices kept": 9, "Linear calls": 26}
    # the solution's comparison: 17 matrices without checkpointing, 8 with four segments
    kept = lambda segments: checkpoint_counts(MemoryConfig(depth=16, width=16, batch=4, segments=segments))  # noqa
    assert kept(0)["matrices kept"] == 17 and kept(4)["matrices kept"] == 8


def test_timing_is_a_positive_median_and_absent_unless_asked():
    runs = sweep(BASE, "segments", [0, 2], repeats=2)
    assert all(r.seconds > 0 for r in runs)
    assert measure_memory(BASE).seconds != measure_memory(BASE).seconds  # nan: not timed
