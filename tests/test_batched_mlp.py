"""Chapter 3's batched MLP: K copies in one stacked network train exactly as K lone runs, a lone run exactly as
nn.Linear layers with their torch.optim optimizer, and a diverging copy is named without touching the others."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.batched_mlp import MLPConfig, Run, digits_split, forward, time_sweep, train_runs
from gradlab.schedules import Cosine, MultiStep, OneCycle, WarmupCosine, WarmRestarts, lr_at
from gradlab.seeding import generator

SPLIT = digits_split(0)
SMALL = MLPConfig(hidden=12, epochs=2, batch_size=200)


def test_the_split_is_disjoint_and_standardized_with_training_statistics():
    s = SPLIT
    assert s.x_train.shape[0] + s.x_val.shape[0] == 1797 and s.x_train.shape[1] == 64
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    std = s.x_train.std(0, unbiased=False)
    live = std > 0  # border pixels that are 0 in every training image stay 0
    torch.testing.assert_close(s.x_train.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(std[live], torch.ones(int(live.sum())), atol=1e-4, rtol=0)
    rows = {tuple(r) for r in s.x_train.tolist()}
    assert sum(tuple(r) in rows for r in s.x_val.tolist()) < 10  # the digits hold a few duplicate images


RUNS = [Run("SGD", 0.1, seed=3), Run("momentum", 0.05, 1e-3, seed=4), Run("Adagrad", 0.05, seed=5),
        Run("RMSprop", 1e-3, seed=6), Run("Adam", 3e-3, 1e-2, seed=7), Run("AdamW", 3e-3, 0.1, seed=7),
        Run("AMSGrad", 1e-2, seed=8), Run("momentum", 0.05, l1=1e-3, seed=9),
        Run("momentum", 0.05, l1=1e-2, prox=True, seed=9)]


def test_batched_runs_equal_the_same_runs_one_at_a_time():
    batched = train_runs(SPLIT, RUNS, SMALL, batched=True)
    looped = train_runs(SPLIT, RUNS, SMALL, batched=False)
    for name in ("train_loss", "val_loss", "train_acc", "weights"):
        torch.testing.assert_close(getattr(batched, name), getattr(looped, name), rtol=1e-4, atol=1e-5)
    assert batched.diverged == looped.diverged == (None,) * len(RUNS)


TOTAL = SMALL.epochs * math.ceil(SPLIT.x_train.shape[0] / SMALL.batch_size)  # updates in a SMALL run


@pytest.mark.parametrize("run, depth", [
    (Run("Adam", 3e-3, 1e-2, seed=2), 1), (Run("momentum", 0.05, seed=1), 1), (Run("AdamW", 1e-2, 0.1, seed=5), 1),
    (Run("Adam", 3e-3, seed=4, schedule=WarmupCosine(TOTAL, 3)), 3),
    (Run("momentum", 0.1, seed=6, schedule=OneCycle(TOTAL)), 2)], ids=lambda x: getattr(x, "kind", x))
def test_a_copy_trains_exactly_as_nn_linear_layers_with_torch_optim(run, depth):
    """The same initial weights and mini-batches, fed to nn.Sequential, its optimizer and its scheduler the plain
    way; one and several hidden layers."""
    g = generator(run.seed)
    widths = [64] + [12] * depth + [10]
    layers = []
    for a, b in zip(widths, widths[1:]):
        w, bias = [(torch.rand(s, generator=g) * 2 - 1) / math.sqrt(a) for s in ((a, b), (1, b))]
        layer = nn.Linear(a, b)
        with torch.no_grad():
            layer.weight.copy_(w.T), layer.bias.copy_(bias[0])
        layers += [layer, nn.ReLU()]
    net = nn.Sequential(*layers[:-1])
    cls, settings = run.group()
    opt = cls(net.parameters(), **settings)
    sched = run.schedule.to_torch(opt) if run.schedule is not None else None
    order_gen = generator(run.seed + 1)
    n = SPLIT.x_train.shape[0]
    for _ in range(SMALL.epochs):
        order = torch.randperm(n, generator=order_gen)
        for start in range(0, n, SMALL.batch_size):
            idx = order[start:start + SMALL.batch_size]
            opt.zero_grad()
            F.cross_entropy(net(SPLIT.x_train[idx]), SPLIT.y_train[idx]).backward()
            opt.step()
            if sched is not None:
                sched.step()
    ours = train_runs(SPLIT, [run], MLPConfig(12, SMALL.epochs, SMALL.batch_size, depth))
    torch.testing.assert_close(ours.weights[0], torch.cat([m.weight.T.flatten() for m in net[::2]]),
                               rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        val = F.cross_entropy(net(SPLIT.x_val), SPLIT.y_val).double()
    torch.testing.assert_close(ours.val_loss[0, -1], val, rtol=1e-4, atol=1e-6)


def test_each_copy_follows_its_own_schedule_and_the_record_holds_the_formula():
    schedules = [None, Cosine(TOTAL, 1e-3), WarmupCosine(TOTAL, 4), OneCycle(TOTAL), MultiStep((3, 7), 0.1),
                 WarmRestarts(5, 2)]
    runs = [Run("momentum", 0.05, seed=i, schedule=s) for i, s in enumerate(schedules)]
    runs.append(Run("Adam", 3e-3, seed=9, schedule=Cosine(TOTAL)))  # same schedule, another optimizer class
    batched = train_runs(SPLIT, runs, SMALL)
    looped = train_runs(SPLIT, runs, SMALL, batched=False)
    assert batched.step_lr.shape == batched.step_loss.shape == (len(runs), TOTAL)
    for i, run in enumerate(runs):
        formula = torch.tensor([run.lr if run.schedule is None else lr_at(run.schedule, k, run.lr)
                                for k in range(TOTAL)], dtype=torch.float64)
        torch.testing.assert_close(batched.step_lr[i], formula, rtol=1e-12, atol=0)
    for name in ("train_loss", "val_loss", "weights", "step_loss", "step_lr"):
        torch.testing.assert_close(getattr(batched, name), getattr(looped, name), rtol=1e-4, atol=1e-5)
    # the first update's recorded loss is the loss at the initial weights, on the first mini-batch
    assert batched.step_loss[:, 0].sub(math.log(10)).abs().max() < 0.3


def test_each_epochs_snapshot_reproduces_that_epochs_validation_loss():
    seen = []
    out = train_runs(SPLIT, RUNS[:3], SMALL, on_epoch=lambda epoch, params: seen.append((epoch, params)))
    assert [e for e, _ in seen] == list(range(1, SMALL.epochs + 1))
    for epoch, params in seen:
        loss = F.cross_entropy(forward(params, SPLIT.x_val).transpose(1, 2),
                               SPLIT.y_val.expand(3, -1), reduction="none").mean(1).double()
        torch.testing.assert_close(loss, out.val_loss[:, epoch], rtol=1e-6, atol=1e-7)
    assert seen[0][1][0].data_ptr() != seen[1][1][0].data_ptr()  # copies, not views of the training weights
    with pytest.raises(ValueError, match="batched=True"):
        train_runs(SPLIT, RUNS[:2], SMALL, batched=False, on_epoch=print)


def test_a_one_cycle_shorter_than_the_run_is_a_clear_error():
    with pytest.raises(ValueError, match="shorter than the run"):
        train_runs(SPLIT, [Run("momentum", 0.1, schedule=OneCycle(TOTAL - 1))], SMALL)


def test_a_bad_network_setting_or_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="depth must be a whole number"):
        MLPConfig(depth=0)
    with pytest.raises(TypeError, match="schedule must be"):
        Run("SGD", 0.1, schedule=0.5)


def test_a_diverging_copy_is_named_and_leaves_the_others_alone():
    runs = [Run("Adam", 1e-3, seed=1), Run("SGD", 1e4, seed=1)]
    out = train_runs(SPLIT, runs, SMALL)
    assert out.diverged[0] is None and out.diverged[1] is not None
    assert (out.diverged_at, out.diverged_run) == (out.diverged[1], "SGD (η = 1e+04)")
    alone = train_runs(SPLIT, runs[:1], SMALL)
    torch.testing.assert_close(out.val_loss[0], alone.val_loss[0], rtol=1e-4, atol=1e-6)


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown optimizer"):
        Run("Lion", 1e-3)


def test_the_sweep_timing_measures_both_ways():
    t = time_sweep(SPLIT, RUNS[:3], MLPConfig(hidden=8, epochs=1, batch_size=400))
    assert t.copies == 3 and t.batched_s > 0 and t.looped_s > 0 and t.speedup > 0  # values are reported, not judged
