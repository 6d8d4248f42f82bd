"""Gradient diagnostics for any ``nn.Module`` (Chapter 5; Chapters 6 and 7 reuse it).

A :class:`GradientMonitor` attaches hooks to a model (and, if given, to its optimizer) and records, step by
step, scalars only: per-layer gradient norms, weight norms and update-to-weight ratios ‖Δw‖/‖w‖, activation
statistics, and the first module (forward) or parameter (backward) where a NaN or an infinity appears.
:meth:`GradientMonitor.result` returns a :class:`Diagnostics`; its ``findings()`` and ``diagnose()``
(:mod:`gradlab.diagnosis`) name the pathologies in sentences.

Rows (layers). A gradient row is a module that owns parameters itself (an ``nn.Linear``, an ``nn.Conv2d``, a
norm layer's γ and β, an ``nn.LSTM``), in the order the model registers them, which for ``nn.Sequential`` and
:class:`gradlab.gradients.nets.DeepMLP` is input to output; ``per="parameter"`` gives one row per parameter
tensor instead. A row's gradient norm is the Euclidean norm of all its parameters' gradients together.
An activation row is one call of an activation module (``nn.Sigmoid``, ``nn.Tanh``, the ReLU family, …) in
the order the forward pass runs them; a module called twice in one pass gives two rows. An activation
applied as a function (``torch.relu`` inside ``forward``) is invisible to hooks: such a model gets gradient
rows but no activation rows.

What a step records. With an optimizer, the monitor records at each ``optimizer.step()`` by itself: the
gradients and weights just before it and the weights just after. Without one, call :meth:`record` after
``loss.backward()`` (no update ratios then). Activation statistics come from the latest forward pass run with
gradients enabled before the step (evaluation passes under ``torch.no_grad()`` are ignored):
- ``act_mean``, ``act_std``: over every entry of the output (examples × units);
- ``saturated`` (sigmoid, tanh): the fraction of entries where φ'(z) < ``saturation`` · max φ' (read off
  the output: φ' = h(1 − h) for sigmoid, 1 − h² for tanh);
- ``zero_fraction`` (ReLU family): the fraction of entries ≤ 0;
- ``dead`` (ReLU family): the fraction of units whose output is ≤ 0 for every example of the batch, a unit
  being one entry of the output beyond the batch dimension (for a convolution, a channel at one position).
  For ReLU these units output exactly 0 and get exactly zero gradient: dead. For Leaky ReLU and ELU they
  sit in the negative regime but still pass ω of the gradient: inactive, not dead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .diagnosis import Diagnostics

__all__ = ["GradientMonitor", "Diagnostics", "UnitCensus", "unit_census", "activation_kind"]

_KINDS = (("sigmoid", (nn.Sigmoid,)), ("tanh", (nn.Tanh,)), ("relu", (nn.ReLU, nn.ReLU6)),
          ("leaky", (nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU)),
          ("smooth", (nn.GELU, nn.SiLU, nn.Mish, nn.Softplus)))
STATS = ("mean", "std", "saturated", "zero_fraction", "dead")


def activation_kind(module: nn.Module) -> str | None:
    """"sigmoid", "tanh", "relu" (ReLU, ReLU6), "leaky" (Leaky ReLU, ELU, …), "smooth" (GELU, SiLU, …) or None."""
    for name, types in _KINDS:
        if isinstance(module, types):
            return name
    return None


def _first_tensor(output) -> torch.Tensor | None:
    """A module's output, or the first tensor of a tuple (nn.LSTM returns (out, (h, c)))."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) and output.is_floating_point() else None


def _act_stats(h: torch.Tensor, kind: str, saturation: float) -> torch.Tensor:
    """(mean, std, saturated, zero fraction, dead) of one activation output; NaN where it does not apply."""
    h = h.detach()
    n = h.numel()
    nan = torch.full((), math.nan, device=h.device)
    mean = h.mean()
    # two passes rather than torch.std, which is several times slower on the CPU for these small tensors
    std = ((h - mean).pow(2).sum() / (n - 1)).sqrt() if n > 1 else nan
    sat = zero = dead = nan
    if kind == "sigmoid":
        sat = (h * (1 - h) < saturation * 0.25).sum() / n
    elif kind == "tanh":
        sat = (1 - h * h < saturation).sum() / n
    elif kind in ("relu", "leaky"):
        off = n - torch.count_nonzero(h if kind == "relu" else h.clamp(min=0))  # entries ≤ 0
        zero = off / n
        units = h.reshape(h.shape[0] if h.dim() > 1 else 1, -1)
        dead = (units.amax(0) <= 0).sum() / units.shape[1]  # off for every example of the batch
    return torch.stack([mean.float(), std.float(), *(x.float() for x in (sat, zero, dead))])


def _named_rows(model: nn.Module, per: str) -> list[tuple[str, list[nn.Parameter], list[str]]]:
    """(row name, its trainable parameters, their full names); each parameter in one row only."""
    rows, seen = [], set()
    for mname, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for _, p in own)
        full = [f"{mname}.{n}" if mname else n for n, _ in own]
        if per == "parameter":
            rows += [(f, [p], [f]) for f, (_, p) in zip(full, own)]
        elif own:
            rows.append((mname or type(module).__name__, [p for _, p in own], full))
    return rows


class GradientMonitor:
    """Hooks that record gradient and activation diagnostics of ``model`` every ``every`` steps.

    Use as ``with GradientMonitor(model, optimizer) as monitor: …`` or ``attach()``/``detach()``; without an
    optimizer call :meth:`record` after each ``loss.backward()``. ``per`` is "module" or "parameter" (rows);
    ``saturation`` is the fraction of max φ' below which a sigmoid or tanh unit counts as saturated;
    ``check_finite`` watches every module's output for NaN and infinity. Detached, the model and optimizer
    carry no hook of it and compute exactly as before.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = 1,
                 per: str = "module", saturation: float = 0.05, check_finite: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"GradientMonitor watches a torch.nn.Module, not a {type(model).__name__}")
        if next(model.parameters(), None) is None:
            raise ValueError(f"the model ({type(model).__name__}) has no parameters: there are no gradients to watch")
        if per not in ("module", "parameter"):
            raise ValueError(f"per is 'module' (a row per layer) or 'parameter' (a row per tensor), not {per!r}")
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every is a whole number of steps ≥ 1, got {every!r}")
        if not 0 < saturation < 1:
            raise ValueError(f"saturation is a fraction of the largest derivative, in (0, 1), got {saturation}")
        self.rows = _named_rows(model, per)
        if not self.rows:
            raise ValueError("the model has no trainable parameter (every requires_grad is False): no layer to watch")
        self._params = [p for _, ps, _ in self.rows for p in ps]
        self._pnames = [n for _, _, ns in self.rows for n in ns]
        if optimizer is not None:
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError(f"optimizer must be a torch.optim.Optimizer, not a {type(optimizer).__name__}")
            mine = {id(p) for p in model.parameters()}
            if any(id(p) not in mine for g in optimizer.param_groups for p in g["params"]):
                raise ValueError("the optimizer updates parameters that are not the model's: pass the optimizer "
                                 "made from this model's parameters")
        self.model, self.optimizer, self.every, self.saturation = model, optimizer, every, saturation
        self.check_finite = check_finite
        self._row_of = torch.tensor([i for i, (_, ps, _) in enumerate(self.rows) for _ in ps])
        self._row_on: dict[torch.device, torch.Tensor] = {}  # the same index on the parameters' device
        self._handles: list = []
        self._step = 0
        self._records: list[dict] = []
        self._collect = False
        self._pending: dict[str, tuple[str, torch.Tensor]] = {}
        self._flags: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # (module, min, max of its output)
        self._calls: dict[str, int] = {}
        self._kinds: dict[str, str] = {}
        self._before: list[torch.Tensor] | None = None
        self._last: torch.Tensor | None = None

    # attaching

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> "GradientMonitor":
        """Register the hooks (forward hooks on the modules; step hooks on the optimizer, if any)."""
        if self.attached:
            raise ValueError("this monitor is already attached")
        self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
        for name, module in self.model.named_modules():
            kind = activation_kind(module)
            if kind is not None or self.check_finite:
                hook = (lambda m, a, out, n=name or type(module).__name__, k=kind: self._watch(n, k, out))
                self._handles.append(module.register_forward_hook(hook))
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(lambda opt, a, kw: self._pre_step()))
            self._handles.append(self.optimizer.register_step_post_hook(lambda opt, a, kw: self._post_step()))
        return self

    def detach(self) -> None:
        """Remove every hook; what was recorded stays readable through :meth:`result`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._collect, self._before, self._pending, self._flags, self._last = False, None, {}, [], None

    def __enter__(self) -> "GradientMonitor":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # hooks

    def _start_forward(self, module, args) -> None:
        self._collect = torch.is_grad_enabled() and self._step % self.every == 0
        if self._collect:
            self._pending, self._flags, self._calls, self._last = {}, [], {}, None

    def _watch(self, name: str, kind: str | None, output) -> None:
        if not self._collect:
            return
        h = _first_tensor(output)
        if h is None or h.numel() == 0:
            return
        # A container's output is usually its last child's, an Identity's its input: checked already.
        if self.check_finite and h is not self._last:
            self._flags.append((name, *torch.aminmax(h.detach())))  # both finite iff every entry is
        self._last = h
        if kind is not None:
            n = self._calls[name] = self._calls.get(name, 0) + 1
            label = name if n == 1 else f"{name} (call {n})"
            self._kinds.setdefault(label, kind)
            self._pending[label] = (kind, _act_stats(h, kind, self.saturation))

    def _norms(self, tensors: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-parameter norms (−1 for a missing tensor) and per-row norms (NaN for a row with none), float64 where
        the device has it. A NaN or infinite entry makes its parameter's and its row's norm NaN or infinite."""
        dtype = torch.float32 if self._params[0].device.type == "mps" else torch.float64
        dev = self._params[0].device
        # −1 marks a missing gradient (norms are ≥ 0, NaN or infinite)
        per = torch.stack([torch.linalg.vector_norm(t.detach(), dtype=dtype) if t is not None
                           else torch.full((), -1.0, dtype=dtype, device=dev) for t in tensors])
        index = self._row_on.get(dev)
        if index is None:  # copied to the device once: a copy from host memory every step would wait for the GPU
            index = self._row_on[dev] = self._row_of.to(dev)
        missing = per < 0
        present = torch.zeros(len(self.rows), dtype=dtype, device=dev).index_add_(0, index, (~missing).to(dtype))
        rows = torch.zeros(len(self.rows), dtype=dtype, device=dev).index_add_(
            0, index, torch.where(missing, 0.0, per) ** 2).sqrt()
        return per, torch.where(present > 0, rows, torch.full_like(rows, math.nan))

    def _capture(self) -> bool:
        """Gradients, weights and the pending forward statistics of this step; False when there are no gradients."""
        grads = [p.grad for p in self._params]
        if all(g is None for g in grads):
            return False
        pgrad, grad = self._norms(grads)
        _, weight = self._norms(list(self._params))
        self._records.append(dict(step=self._step, grad=grad, pgrad=pgrad, weight=weight,
                                  update=torch.full_like(grad, math.nan), acts=self._pending, flags=self._flags))
        self._pending, self._flags, self._last = {}, [], None
        return True

    def _pre_step(self) -> None:
        self._before = None
        if self._step % self.every == 0 and self._capture():
            self._before = [p.detach().clone() for p in self._params]

    def _post_step(self) -> None:
        if self._before is not None:
            _, delta = self._norms([p.detach() - b for p, b in zip(self._params, self._before)])
            w = self._records[-1]["weight"]
            self._records[-1]["update"] = torch.where(w > 0, delta / w, torch.full_like(w, math.nan))
            self._before = None
        self._step += 1

    def record(self) -> None:
        """Record this step's gradients (call after ``loss.backward()``; only when no optimizer was given)."""
        if self.optimizer is not None:
            raise ValueError("this monitor records at optimizer.step() by itself: do not call record() as well")
        if self._step % self.every == 0 and not self._capture():
            raise ValueError("no gradients yet: call monitor.record() after loss.backward()")
        self._step += 1

    # the result

    def result(self) -> Diagnostics:
        """Everything recorded so far, as tensors (rows, recorded steps) on the CPU."""
        recs = self._records
        s = len(recs)

        def stack(key: str) -> torch.Tensor:
            if not recs:
                return torch.empty(len(self.rows), 0, dtype=torch.float64)
            return torch.stack([r[key] for r in recs], 1).to("cpu", torch.float64)

        labels = list(dict.fromkeys(k for r in recs for k in r["acts"]))
        acts = torch.full((len(STATS), len(labels), s), math.nan, dtype=torch.float64)
        for j, r in enumerate(recs):
            for i, label in enumerate(labels):
                if label in r["acts"]:
                    acts[:, i, j] = r["acts"][label][1].to("cpu", torch.float64)
        forward = backward = None
        for r in recs:
            if forward is None and r["flags"]:
                ok = torch.isfinite(torch.stack([torch.stack([lo, hi]).float() for _, lo, hi in r["flags"]])).all(1)
                if not bool(ok.all()):
                    forward = (r["step"], r["flags"][int((~ok.cpu()).nonzero()[0])][0])
            if backward is None:
                bad = [n for n, v in zip(reversed(self._pnames), reversed(r["pgrad"].cpu().tolist()))
                       if not math.isfinite(v)]
                if bad:
                    backward = (r["step"], bad[0])
        return Diagnostics(
            layers=tuple(n for n, _, _ in self.rows),
            weight_rows=tuple(any(p.dim() >= 2 for p in ps) for _, ps, _ in self.rows),
            steps=torch.tensor([r["step"] for r in recs], dtype=torch.long),
            grad_norm=stack("grad"), weight_norm=stack("weight"), update_ratio=stack("update"),
            activations=tuple(labels), act_kinds=tuple(self._kinds[k] for k in labels),
            act_mean=acts[0], act_std=acts[1], saturated=acts[2], zero_fraction=acts[3], dead=acts[4],
            nonfinite_forward=forward, nonfinite_backward=backward)


@dataclass(frozen=True, eq=False)
class UnitCensus:
    """Each ReLU-family activation row's units over a whole data set: ``dead[i]`` marks the units of row ``i``
    whose output is ≤ 0 for every example (dead for ReLU; for Leaky ReLU, in the negative regime on every
    example), ``zero_fraction[i]`` is the fraction of its outputs (examples × units) that are ≤ 0."""

    layers: tuple[str, ...]
    kinds: tuple[str, ...]
    dead: tuple[torch.Tensor, ...]
    zero_fraction: torch.Tensor

    def dead_fraction(self) -> torch.Tensor:
        """(rows,) the fraction of each row's units that are dead on the whole set."""
        return torch.stack([m.float().mean() for m in self.dead]) if self.dead else torch.empty(0)


@torch.no_grad()
def unit_census(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> UnitCensus:
    """Which ReLU-family units of ``model`` are off for every example of ``x`` (the forward hooks of this module).

    Runs in evaluation mode (batch norm's running statistics are not touched), ``batch_size`` examples at a
    time; the hooks are removed and the model's mode restored on return. Rows are labelled as in
    :class:`GradientMonitor`.
    """
    dead: dict[str, torch.Tensor] = {}
    zeros: dict[str, float] = {}
    kinds: dict[str, str] = {}
    calls: dict[str, int] = {}
    handles = [model.register_forward_pre_hook(lambda m, a: calls.clear())]

    def watch(name: str, kind: str, output) -> None:
        h = _first_tensor(output)
        if h is None:
            return
        n = calls[name] = calls.get(name, 0) + 1
        label = name if n == 1 else f"{name} (call {n})"
        off = (h <= 0).reshape(h.shape[0], -1)
        dead[label] = dead[label] & off.all(0) if label in dead else off.all(0)
        zeros[label] = zeros.get(label, 0.0) + float(off.sum())
        kinds[label] = kind

    for name, module in model.named_modules():
        kind = activation_kind(module)
        if kind in ("relu", "leaky"):
            handles.append(module.register_forward_hook(
                lambda m, a, out, n=name or type(module).__name__, k=kind: watch(n, k, out)))
    was = model.training
    model.eval()
    try:
        for i in range(0, x.shape[0], batch_size):
            model(x[i:i + batch_size])
    finally:
        model.train(was)
        for handle in handles:
            handle.remove()
    labels = tuple(dead)
    return UnitCensus(labels, tuple(kinds[k] for k in labels), tuple(dead[k] for k in labels),
                      torch.tensor([zeros[k] / (x.shape[0] * dead[k].numel()) for k in labels], dtype=torch.float64))
