"""Chapter 6, Experiment 7: normalizing token sequences. Layer normalization (Ba, Kiros & Hinton 2016) and RMSNorm
(Zhang & Sennrich 2019) normalize each token's d_model features on their own; batch normalization over the tokens
(BatchNorm1d on the (B·T_seq, d_model) reshape) mixes every token of the batch, padding included, into the
statistics c_𝓑 and σ²_𝓑, so a sequence's output depends on how much padding there is and on the other sequences
in its batch; masked to the real tokens it no longer sees the padding but still sees the other sequences.

Sequences are made by code: tokens 1 … vocab − 1, lengths drawn in [min_len, max_len], padded with token 0 (whose
embedding is the zero vector, ``nn.Embedding(padding_idx=0)``) to the batch's length T_seq plus ``extra_pad``.
The features normalized are the (untrained) embeddings plus position embeddings, drawn with a mean and a scale
that are not 0 and 1, so that what a normalization removes is visible. :class:`TinyTransformer` is the pre-LN
block of Xiong et al. (2020), x + Attention(N(x)), then x + MLP(N(x)), with any of these norms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..seeding import generator

__all__ = ["SEQ_NORMS", "TokenNorm", "Sequences", "make_sequences", "TinyTransformer", "tiny_transformer", "SequenceStatsConfig",
           "SequenceStats", "sequence_stats", "SequenceTaskConfig", "SequenceTask", "sequence_task"]

SEQ_NORMS = ("layer", "batch", "batch_masked", "rms", "none")
NORM_LABELS = {"layer": "LayerNorm", "batch": "BatchNorm over tokens", "batch_masked": "BatchNorm, padding masked",
               "rms": "RMSNorm", "none": "no norm"}


class TokenNorm(nn.Module):
    """A normalization of (B, T_seq, d_model) features: per token (layer, rms), over the batch's tokens (batch:
    padding included; batch_masked: the real tokens only, padding left at 0), or none."""

    def __init__(self, kind: str, d: int):
        super().__init__()
        if kind not in SEQ_NORMS:
            raise ValueError(f"the norm is one of {SEQ_NORMS}, not {kind!r}")
        self.kind = kind
        self.norm = {"layer": lambda: nn.LayerNorm(d), "rms": lambda: nn.RMSNorm(d), "none": nn.Identity}.get(
            kind, lambda: nn.BatchNorm1d(d))()

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.kind == "batch":
            return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        if self.kind == "batch_masked":  # statistics over x[mask], the real tokens; padding stays 0
            out = torch.zeros_like(x)
            out[mask] = self.norm(x[mask])
            return out
        return self.norm(x)


@dataclass(frozen=True, eq=False)
class Sequences:
    """Token ids (B, T_seq), 0 for padding; ``mask`` True at real tokens; ``lengths`` (B,)."""

    tokens: Tensor
    mask: Tensor
    lengths: Tensor


def make_sequences(batch: int, min_len: int, max_len: int, vocab: int, seed: int, extra_pad: int = 0) -> Sequences:
    """``batch`` random sequences of lengths in [min_len, max_len], padded with 0 to max_len + extra_pad."""
    if not 1 <= min_len <= max_len or vocab < 2 or batch < 1 or extra_pad < 0:
        raise ValueError(f"need 1 ≤ min_len ≤ max_len, vocab ≥ 2, batch ≥ 1, extra_pad ≥ 0; got min_len {min_len}, "
                         f"max_len {max_len}, vocab {vocab}, batch {batch}, extra_pad {extra_pad}")
    g = generator(seed)
    lengths = torch.randint(min_len, max_len + 1, (batch,), generator=g)
    tokens = F.pad(torch.randint(1, vocab, (batch, max_len), generator=g), (0, extra_pad))  # the same draws at any padding
    mask = torch.arange(max_len + extra_pad)[None, :] < lengths[:, None]
    return Sequences(tokens * mask, mask, lengths)


def _init(module: nn.Module, g: torch.Generator, mean: float = 0.0, std: float = 1.0) -> None:
    """Draw every parameter from ``g``: matrices Xavier-uniform, vectors 0, norms' scale 1, embeddings N(mean, std²)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean, std, generator=g)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, (nn.LayerNorm, nn.RMSNorm, nn.BatchNorm1d)):
                m.reset_parameters()
        for name, p in module.named_parameters():
            if "norm" in name or "embed" in name:
                continue
            (nn.init.xavier_uniform_(p, generator=g) if p.dim() >= 2 else nn.init.zeros_(p))


class TinyTransformer(nn.Module):
    """Embedding + position embedding, one pre-LN block (x + Attention(N(x)), x + MLP(N(x))), a final N, a mean
    over the real tokens and a linear read-out to ``classes``; N is a :class:`TokenNorm` of ``norm``."""

    def __init__(self, norm: str, vocab: int, t_max: int, d_model: int = 16, heads: int = 2, classes: int = 2):
        super().__init__()
        self.embed, self.embed_pos = nn.Embedding(vocab, d_model, padding_idx=0), nn.Embedding(t_max, d_model)
        self.norm1, self.norm2, self.norm_out = (TokenNorm(norm, d_model) for _ in range(3))
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.read_out = nn.Linear(d_model, classes)

    def features(self, s: Sequences) -> Tensor:
        """The token features the first norm sees: embedding plus position embedding (zero at padding)."""
        pos = torch.arange(s.tokens.shape[1], device=s.tokens.device)
        return (self.embed(s.tokens) + self.embed_pos(pos)[None]) * s.mask[..., None]

    def forward(self, s: Sequences) -> Tensor:
        x = self.features(s)
        a = self.norm1(x, s.mask)
        x = x + self.attn(a, a, a, key_padding_mask=~s.mask, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x, s.mask))
        x = self.norm_out(x, s.mask) * s.mask[..., None]
        return self.read_out(x.sum(1) / s.lengths[:, None])


def tiny_transformer(norm: str, vocab: int, t_max: int, d_model: int = 16, seed: int = 0,
                     mean: float = 0.0, std: float = 1.0) -> TinyTransformer:
    """A :class:`TinyTransformer` whose parameters are all drawn from ``seed`` (no global generator)."""
    with torch.device("meta"):
        model = TinyTransformer(norm, vocab, t_max, d_model)
    model = model.to_empty(device="cpu")
    _init(model, generator(seed), mean, std)
    return model


@dataclass(frozen=True)
class SequenceStatsConfig:
    """Sequence 0 in a batch of ``batch`` (lengths in [min_len, max_len], vocab ids), its features of width
    d_model drawn N(feature_mean, feature_std²); the batch changed by ``extra_pad`` more padding positions and
    by other companions (drawn with ``others``; 0: the reference companions)."""

    d_model: int = 16
    batch: int = 8
    min_len: int = 3
    max_len: int = 12
    vocab: int = 20
    extra_pad: int = 8
    others: int = 1
    feature_mean: float = 1.0
    feature_std: float = 2.0
    seed: int = 0

    def __post_init__(self):
        if self.d_model < 2 or self.batch < 2:
            raise ValueError(f"d_model ≥ 2 (a per-token std needs two features) and a batch of at least 2 sequences "
                             f"(to have companions) are needed; got d_model {self.d_model}, batch {self.batch}")
        if self.others < 0 or self.feature_std <= 0:
            raise ValueError(f"others ≥ 0 and feature_std > 0 are needed, got {self.others}, {self.feature_std}")
        make_sequences(self.batch, self.min_len, self.max_len, self.vocab, 0, self.extra_pad)


@dataclass(frozen=True, eq=False)
class SequenceStats:
    """Per norm (``norms`` order): sequence 0's output on its real tokens in the reference batch ``reference``
    and in the changed batch ``changed`` (norms, length, d_model); per-token mean and std of the reference output
    (norms, length); the largest change of sequence 0's output when only the padding grows (``pad_change``),
    when only the companions change (``others_change``), both (``change``); and train vs eval mode after the
    running statistics have seen 50 batches (``eval_change``)."""

    config: SequenceStatsConfig
    norms: tuple[str, ...]
    reference: Tensor
    changed: Tensor
    token_mean: Tensor
    token_std: Tensor
    pad_change: Tensor
    others_change: Tensor
    change: Tensor
    eval_change: Tensor


def _batch(c: SequenceStatsConfig, others: int, extra_pad: int) -> Sequences:
    """Sequence 0 fixed by ``c.seed``, companions drawn by ``others``; padded to max_len + extra_pad."""
    first = make_sequences(1, c.min_len, c.max_len, c.vocab, c.seed, extra_pad)
    rest = make_sequences(c.batch - 1, c.min_len, c.max_len, c.vocab, 1000 + c.seed + others, extra_pad)
    return Sequences(*(torch.cat([getattr(first, k), getattr(rest, k)]) for k in ("tokens", "mask", "lengths")))


def sequence_stats(config: SequenceStatsConfig = SequenceStatsConfig(), norms: tuple[str, ...] = SEQ_NORMS,
                   ) -> SequenceStats:
    """How each norm's output for one sequence depends on its batch (untrained features, scale 1 and shift 0)."""
    c = config
    model = tiny_transformer("none", c.vocab, c.max_len + c.extra_pad, c.d_model, c.seed, c.feature_mean,
                             c.feature_std)
    cases = {(0, 0): None, (0, c.extra_pad): None, (c.others, 0): None, (c.others, c.extra_pad): None}
    cases.update({(10 + k, 0): None for k in range(50)})  # the batches the running statistics see
    with torch.no_grad():
        for o, p in cases:
            s = _batch(c, o, p)
            cases[o, p] = (model.features(s), s.mask)
    n0 = int(cases[0, 0][1][0].sum())
    rows = {k: [] for k in ("ref", "chg", "mean", "std", "pad", "oth", "all", "eval")}
    with torch.no_grad():
        for kind in norms:
            norm = TokenNorm(kind, c.d_model).train()

            def out(others: int, pad: int) -> Tensor:
                return norm(*cases[others, pad])[0, :n0]

            ref = out(0, 0)
            rows["ref"].append(ref)
            rows["chg"].append(out(c.others, c.extra_pad))
            rows["mean"].append(ref.mean(-1))
            rows["std"].append(ref.std(-1, unbiased=False))  # LayerNorm divides by the biased σ
            for key, (o, p) in (("pad", (0, c.extra_pad)), ("oth", (c.others, 0)), ("all", (c.others, c.extra_pad))):
                rows[key].append((out(o, p) - ref).abs().max())
            for k in range(50):  # ψ = 0.1: the running statistics forget all but 0.9^50 ≈ 0.5% of their start
                out(10 + k, 0)
            norm.eval()
            rows["eval"].append((out(0, 0) - ref).abs().max())
    st = {k: torch.stack(v) for k, v in rows.items()}
    return SequenceStats(c, tuple(norms), st["ref"], st["chg"], st["mean"], st["std"], st["pad"], st["oth"],
                         st["all"], st["eval"])


@dataclass(frozen=True)
class SequenceTaskConfig:
    """Train a :class:`TinyTransformer` with ``norm`` to say whether a sequence's first token appears again in it
    (tokens 1 … vocab − 1, lengths in [min_len, max_len]): Adam at η, ``steps`` fresh batches of ``batch``."""

    norm: str = "layer"
    steps: int = 400
    batch: int = 32
    lr: float = 3e-3
    d_model: int = 16
    vocab: int = 8
    min_len: int = 3
    max_len: int = 12
    val_size: int = 512
    extra_pad: int = 20  # the extra padding of the second validation set
    seed: int = 0

    def __post_init__(self):
        if self.norm not in SEQ_NORMS:
            raise ValueError(f"the norm is one of {SEQ_NORMS}, not {self.norm!r}")
        if self.steps < 1 or self.batch < 2 or self.val_size < 2 or not self.lr > 0:
            raise ValueError("steps ≥ 1, batch ≥ 2, val_size ≥ 2 and a positive η are needed")
        make_sequences(self.batch, self.min_len, self.max_len, self.vocab, 0, self.extra_pad)


@dataclass(frozen=True, eq=False)
class SequenceTask:
    """Per-step training loss; validation accuracy in eval mode and with batch statistics (train mode), on the
    validation set padded to max_len and padded ``extra_pad`` further."""

    config: SequenceTaskConfig
    step_loss: Tensor
    val_acc_eval: float
    val_acc_eval_padded: float
    val_acc_batch_stats: float
    val_acc_batch_stats_padded: float
    diverged_at: int | None = None


def _labels(s: Sequences) -> Tensor:
    first = s.tokens[:, :1]
    return ((s.tokens[:, 1:] == first) & s.mask[:, 1:]).any(1).long()


def sequence_task(config: SequenceTaskConfig = SequenceTaskConfig()) -> SequenceTask:
    """Train the tiny pre-LN Transformer with one norm and measure its validation accuracy four ways."""
    c = config
    model = tiny_transformer(c.norm, c.vocab, c.max_len + c.extra_pad, c.d_model, c.seed)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    losses, diverged = torch.full((c.steps,), float("nan")), None
    model.train()
    for k in range(c.steps):
        s = make_sequences(c.batch, c.min_len, c.max_len, c.vocab, seed=10_000 * (c.seed + 1) + k)
        loss = F.cross_entropy(model(s), _labels(s))
        if not torch.isfinite(loss):
            diverged = k
            break
        losses[k] = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    accs = []
    for train_mode in (False, True):
        for pad in (0, c.extra_pad):
            s = make_sequences(c.val_size, c.min_len, c.max_len, c.vocab, seed=999_999, extra_pad=pad)
            model.train(train_mode)  # train mode: the validation batch's own statistics (running ones updated too)
            with torch.no_grad():
                accs.append(float((model(s).argmax(1) == _labels(s)).float().mean()))
    return SequenceTask(c, losses, *accs, diverged_at=diverged)
