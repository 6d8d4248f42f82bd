"""gradlab.batchnorm_stats.recalibrate, the tool a reader applies to their own model (Chapter 6, Experiment 5)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradlab.batchnorm_stats import batch_norm_layers, recalibrate


def model_and_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    torch_model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8, momentum=0.3), nn.ReLU(), nn.Dropout(0.5),
                                nn.Linear(8, 4), nn.BatchNorm1d(4), nn.LayerNorm(4))
    with torch.no_grad():
        for p in torch_model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = 2 + 3 * torch.randn(96, 5, generator=g)
    y = torch.randint(0, 4, (96,), generator=g)
    return torch_model, x, y


def test_running_statistics_become_the_plain_average_of_the_batch_statistics():
    model, x, y = model_and_data()
    model.eval()
    bn = model[1]
    bn.running_mean.fill_(100.0)  # stale
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    assert recalibrate(model, loader) == 3
    z = model[0](x).detach()
    # equal batches: the average of the three batch means is the mean over the data; the variance is the average
    # of the batches' unbiased variances (what momentum=None accumulates)
    torch.testing.assert_close(bn.running_mean, z.mean(dim=0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, torch.stack([z[i:i + 32].var(dim=0) for i in (0, 32, 64)]).mean(0),
                               rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == 3


def test_dropout_is_off_while_the_statistics_are_taken():
    """Evaluation runs without dropout, so the statistics it uses are taken without it: two recalibrations on the
    same data agree exactly (with dropout on they would differ from draw to draw)."""
    model, x, y = model_and_data()
    recalibrate(model, [x])
    first = model[5].running_var.clone()
    recalibrate(model, [x])
    assert torch.equal(model[5].running_var, first)


def test_nothing_else_changes():
    model, x, y = model_and_data()
    model.eval()
    model[3].train()  # a mixed state, restored module by module
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    flags = [m.training for m in model.modules()]
    recalibrate(model, [x[:48], x[48:]])  # a plain list of tensors is a loader too
    assert [m.training for m in model.modules()] == flags
    assert model[1].momentum == 0.3 and model[5].momentum == 0.1
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_recalibrating_repairs_stale_statistics():
    """After the weights change, the old running statistics give a different function from the one the model
    computes with fresh ones; recalibrating makes evaluation match the exact statistics again."""
    model, x, y = model_and_data()
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(x)
        model[0].weight.mul_(3.0)  # the weights change after the statistics were taken
    model.eval()
    with torch.no_grad():
        stale = model(x)
        recalibrate(model, [x])
        fresh = model(x)
    model.train()
    model[3].eval()  # dropout off: batch statistics of the whole data are what the recalibrated ones hold
    with torch.no_grad():
        exact = model(x)
    stale_error, fresh_error = float((stale - exact).abs().max()), float((fresh - exact).abs().max())
    assert stale_error > 0.5
    # one batch: the running mean is the batch mean, the running variance the unbiased one (96/95 times larger), so
    # the two differ only by that factor's effect
    assert fresh_error < 0.1 * stale_error


def test_max_batches_and_device():
    model, x, y = model_and_data()
    assert recalibrate(model, DataLoader(TensorDataset(x, y), batch_size=8), max_batches=2, device="cpu") == 2
    assert int(model[1].num_batches_tracked) == 2


def test_bad_input_gets_a_sentence_and_leaves_the_model_as_it_was():
    model, x, y = model_and_data()
    before = model[1].running_mean.clone()
    with pytest.raises(ValueError, match="no batch normalization"):
        recalibrate(nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4)), [x])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        recalibrate("model", [x])
    with pytest.raises(ValueError, match="no batch"):
        recalibrate(model, [])
    with pytest.raises(TypeError, match="tensors"):
        recalibrate(model, ["not a tensor"])
    with pytest.raises(RuntimeError):  # the model's own error, for inputs of the wrong width
        recalibrate(model, [torch.ones(4, 3)])
    with pytest.raises(ValueError, match="max_batches"):
        recalibrate(model, [x], max_batches=0)
    assert torch.equal(model[1].running_mean, before)
    assert model[1].momentum == 0.3


def test_finds_every_kind_of_batch_norm_that_keeps_statistics():
    m = nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.BatchNorm3d(3), nn.BatchNorm1d(3, track_running_stats=False),
                      nn.GroupNorm(1, 3), nn.InstanceNorm2d(3))
    assert [type(b).__name__ for b in batch_norm_layers(m)] == ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]
