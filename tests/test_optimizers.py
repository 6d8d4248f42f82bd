"""Chapter 3's from-scratch optimizers against torch.optim, step for step on a small network, and what
their state costs."""
import pytest
import torch
import torch.nn.functional as F

from gradlab import optimizers as ours

STEPS = 250
# float64 throughout: the two implementations round differently (x − ηg against torch's fused
# add_(alpha=−η), √(v/c) against √v/√c), a few units in the last place per step; over 250 steps
# of a smooth, non-chaotic training run that stays far below 1e-10.
TOL = dict(rtol=1e-10, atol=1e-12)


def mlp_params(seed: int = 0) -> list[torch.Tensor]:
    """A 6-16-3 tanh network's weights and biases, float64."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(16, 6), (16,), (3, 16), (3,)]
    return [(torch.randn(s, generator=g, dtype=torch.float64) / s[-1] ** 0.5) for s in shapes]


def data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    return x, y


def loss_of(params, x, y):
    w1, b1, w2, b2 = params
    return F.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)


def train_side_by_side(make_ours, make_theirs, steps=STEPS, lrs=None):
    """Run both optimizers from the same start on the same data; return both parameter histories."""
    x, y = data()
    mine = [p.clone().requires_grad_(True) for p in mlp_params()]
    theirs = [p.clone().requires_grad_(True) for p in mlp_params()]
    a, b = make_ours(mine), make_theirs(theirs)
    hist_a, hist_b = [], []
    for k in range(steps):
        if lrs is not None:
            a.lr = lrs[k]
            for group in b.param_groups:
                group["lr"] = lrs[k]
        for opt, params, hist in ((a, mine, hist_a), (b, theirs, hist_b)):
            opt.zero_grad()
            loss_of(params, x, y).backward()
            opt.step()
            hist.append(torch.cat([p.detach().flatten() for p in params]))
    return torch.stack(hist_a), torch.stack(hist_b)


CASES = {
    "sgd": (lambda p: ours.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd+wd": (lambda p: ours.SGD(p, lr=0.1, weight_decay=0.01), lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    "momentum": (lambda p: ours.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "momentum+dampening": (lambda p: ours.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
                           lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    "nesterov": (lambda p: ours.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "adagrad": (lambda p: ours.Adagrad(p, lr=0.1, weight_decay=0.01),
                lambda p: torch.optim.Adagrad(p, lr=0.1, weight_decay=0.01)),
    # RMSprop steps by about η·sign(g): where weight decay holds a weight near the point where its gradient
    # changes sign, a rounding difference flips the step, and torch's own run, started 1e-15 away, ends
    # 1e-8 to 1e-3 away (e.g. alpha=0.9, lr=0.003). The comparison uses a run that does not amplify rounding.
    "rmsprop": (lambda p: ours.RMSprop(p, lr=0.001, alpha=0.95, weight_decay=0.01),
                lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.95, weight_decay=0.01)),
    "rmsprop-defaults": (lambda p: ours.RMSprop(p), lambda p: torch.optim.RMSprop(p)),
    "adam": (lambda p: ours.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
             lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
    "adam-defaults": (lambda p: ours.Adam(p), lambda p: torch.optim.Adam(p)),
    "amsgrad": (lambda p: ours.Adam(p, lr=0.01, weight_decay=0.01, amsgrad=True),
                lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01, amsgrad=True)),
    "adamw": (lambda p: ours.AdamW(p, lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    "adamw+amsgrad": (lambda p: ours.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True),
                      lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_from_scratch_matches_torch_optim_step_for_step(case):
    mine, theirs = train_side_by_side(*CASES[case])
    torch.testing.assert_close(mine, theirs, **TOL)
    start = torch.cat([p.flatten() for p in mlp_params()])
    assert float((theirs[-1] - start).norm()) > 0.1, "the run must have gone somewhere for the match to mean anything"


@pytest.mark.parametrize("wrong, right", [("adam", "adamw"), ("amsgrad", "adam"), ("momentum", "nesterov")])
def test_the_comparison_can_tell_optimizers_apart(wrong, right):
    """A negative control: L2 in Adam is not AdamW's decay, AMSGrad is not Adam, Nesterov is not heavy ball."""
    # 30 steps: the pairs part from the first steps on, and a shorter run only makes the check harder
    mine, _ = train_side_by_side(CASES[wrong][0], CASES[wrong][1], steps=30)
    _, theirs = train_side_by_side(CASES[right][0], CASES[right][1], steps=30)
    assert not torch.allclose(mine, theirs, **TOL)


def test_without_bias_correction_adam_is_not_torchs():
    """The switch that exists only for teaching really changes the run."""
    mine, theirs = train_side_by_side(lambda p: ours.Adam(p, lr=0.01, bias_correction=False),
                                      lambda p: torch.optim.Adam(p, lr=0.01), steps=20)
    assert not torch.allclose(mine, theirs, **TOL)


def test_torch_form_follows_torch_when_the_learning_rate_changes():
    """PyTorch's form stays PyTorch's under a schedule: η multiplies the whole velocity at each step."""
    lrs = [0.1] * 80 + [0.01] * 90 + [0.05] * 80
    mine, theirs = train_side_by_side(lambda p: ours.SGD(p, lr=0.1, momentum=0.9),
                                      lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lrs=lrs)
    torch.testing.assert_close(mine, theirs, **TOL)


def test_textbook_form_is_torch_form_with_constant_learning_rate_only():
    """v_textbook = −η v_torch by induction when η is constant: the same iterates. With a schedule it is not."""
    const = train_side_by_side(lambda p: ours.HeavyBall(p, lr=0.05, momentum=0.9),
                               lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9))
    torch.testing.assert_close(*const, **TOL)
    lrs = [0.05] * 100 + [0.005] * 150
    changed = train_side_by_side(lambda p: ours.HeavyBall(p, lr=0.05, momentum=0.9),
                                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), lrs=lrs)
    torch.testing.assert_close(changed[0][:100], changed[1][:100], **TOL)
    assert float((changed[0][100] - changed[1][100]).abs().max()) > 1e-4


def _one_step_sizes(opt_factory) -> "ours.StateSize":
    params = [p.clone().requires_grad_(True) for p in mlp_params()]
    opt = opt_factory(params)
    x, y = data()
    loss_of(params, x, y).backward()
    opt.step()
    return ours.state_size(opt)


@pytest.mark.parametrize("name, factory, copies, counters", [
    ("SGD", lambda p: torch.optim.SGD(p, lr=0.1), 0, False),  # x ← x − ηg keeps nothing
    ("SGD+momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 1, False),  # v
    ("Adam", lambda p: torch.optim.Adam(p), 2, True),  # m, v and the step k (for the bias correction)
    ("AdamW", lambda p: torch.optim.AdamW(p), 2, True),  # the decay needs no state of its own
    ("Adam+AMSGrad", lambda p: torch.optim.Adam(p, amsgrad=True), 3, True),  # and the largest v so far
])
def test_optimizer_state_per_parameter(name, factory, copies, counters):
    size = _one_step_sizes(factory)
    params = mlp_params()
    n = sum(p.numel() for p in params)
    assert size.parameters == n == 16 * 6 + 16 + 3 * 16 + 3
    assert size.copies == copies
    assert size.full_bytes == copies * 8 * n  # float64: 8 bytes an entry
    # one step counter per parameter tensor, a 0-dim tensor of torch's scalar dtype (float32 by default)
    assert size.scalar_bytes == (len(params) * torch.tensor(0.0).element_size() if counters else 0)
    assert size.bytes_per_parameter == pytest.approx(copies * 8 + size.scalar_bytes / n)
