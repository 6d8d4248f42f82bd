"""Optimizer state per parameter read from state_dict(), and which rows SparseAdam and Adam move on an embedding."""
import pytest
import torch

from gradlab.optimizer_state import SparseConfig, sparse_vs_dense, state_table, time_sparse_vs_dense

N = 64 * 32 + 32 + 32 * 10 + 10  # the MLP's parameters


@pytest.mark.parametrize("kind, copies, counters", [("SGD", 0, 0), ("momentum", 1, 0), ("Adagrad", 1, 4),
                                                    ("RMSprop", 1, 4), ("Adam", 2, 4), ("AdamW", 2, 4),
                                                    ("AMSGrad", 3, 4)])
def test_state_bytes_per_parameter_are_copies_times_four_plus_the_step_counters(kind, copies, counters):
    """float32: 4 bytes an entry per parameter-sized buffer; one 0-dim float32 step counter per tensor (4 tensors)."""
    size = state_table(kinds=(kind,))[kind]
    assert size.parameters == N
    assert size.bytes_per_parameter == pytest.approx((copies * 4 * N + counters * 4) / N)


CFG = SparseConfig(rows=30, dim=4, lookups=3, steps=7, seed=2)


def _cumulative(looked: torch.Tensor) -> torch.Tensor:
    return looked.int().cummax(0).values.bool()


def test_sparse_adam_moves_exactly_the_rows_looked_up_in_each_step():
    r = sparse_vs_dense(CFG)
    assert torch.equal(r.changed[0], r.looked_up)
    assert torch.equal(r.m_decayed[0], r.looked_up)  # the other rows' moments are left as they were
    assert torch.equal(r.m_nonzero[0], _cumulative(r.looked_up)) and torch.equal(r.v_nonzero[0], r.m_nonzero[0])


def test_dense_adam_keeps_moving_every_row_it_has_seen():
    """A row once looked up has m ≠ 0, and m ← β1 m keeps it nonzero: x moves by η m̂/(√v̂ + ε) at every step."""
    r = sparse_vs_dense(CFG)
    seen = _cumulative(r.looked_up)
    assert torch.equal(r.changed[1], seen) and torch.equal(r.m_decayed[1], seen)
    assert int((r.changed[1] & ~r.looked_up).sum()) > 0


def test_both_keep_two_dense_moments():
    r = sparse_vs_dense(CFG)
    for size in r.state.values():
        assert size.copies == 2  # SparseAdam saves work, not memory


def test_the_step_timing_runs():
    t = time_sparse_vs_dense(rows=2000, dim=8, lookups=16, repeats=2)
    assert t.sparse_s > 0 and t.dense_s > 0  # reported, never judged


def test_more_lookups_than_rows_is_refused():
    with pytest.raises(ValueError, match="between 1"):
        sparse_vs_dense(SparseConfig(rows=4, lookups=5))
