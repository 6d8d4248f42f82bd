"""Chapter 6, Experiment 7: layer norm and RMSNorm normalize each token alone; batch norm over a batch's tokens
makes one sequence's output depend on the padding and on the other sequences (gradlab.normalization.sequences)."""
import pytest
import torch

from gradlab.normalization.sequences import (SequenceStatsConfig, SequenceTaskConfig, Sequences, TokenNorm,
                                             make_sequences, sequence_stats, sequence_task, tiny_transformer)


@pytest.fixture(scope="module")
def stats():
    return sequence_stats(SequenceStatsConfig())


def _row(stats, norm):
    return stats.norms.index(norm)


def test_layer_norm_gives_each_token_mean_zero_std_one(stats):
    i = _row(stats, "layer")
    assert float(stats.token_mean[i].abs().max()) < 1e-5
    # σ/√(σ² + ε) with ε = 1e-5 and features of std ≈ 2: 1 − 1e-6 or so
    assert float((stats.token_std[i] - 1).abs().max()) < 1e-4
    none = _row(stats, "none")  # the features themselves are far from it (mean 1, std 2 by construction)
    assert float(stats.token_mean[none].abs().max()) > 0.5


def test_rms_norm_gives_each_token_unit_rms_but_keeps_its_mean(stats):
    i = _row(stats, "rms")
    rms = stats.reference[i].pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)
    assert float(stats.token_mean[i].abs().max()) > 0.1  # RMSNorm does not centre


def test_per_token_norms_ignore_padding_and_companions_batch_norm_does_not(stats):
    for norm in ("layer", "rms"):
        i = _row(stats, norm)
        assert float(stats.change[i]) == 0.0 and float(stats.eval_change[i]) == 0.0
    b, m = _row(stats, "batch"), _row(stats, "batch_masked")
    assert float(stats.pad_change[b]) > 0.1 and float(stats.others_change[b]) > 0.1
    assert float(stats.pad_change[m]) < 1e-6  # masked: padding is out of the statistics ...
    assert float(stats.others_change[m]) > 0.1  # ... but the other sequences are in them
    assert float(stats.eval_change[b]) > 0.1 and float(stats.eval_change[m]) > 0.1  # train ≠ eval mode


def test_token_batch_norm_matches_its_definitions():
    s = make_sequences(4, 2, 6, 10, seed=0, extra_pad=3)
    x = torch.randn(*s.tokens.shape, 8, generator=torch.Generator().manual_seed(0)) * 2 + 1
    x = x * s.mask[..., None]

    def by_hand(v):
        return (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + 1e-5)

    flat = by_hand(x.reshape(-1, 8)).reshape(x.shape)  # c_𝓑, σ²_𝓑 over all B·T_seq positions, padding too
    torch.testing.assert_close(TokenNorm("batch", 8).train()(x, s.mask), flat, atol=1e-5, rtol=1e-5)
    masked = TokenNorm("batch_masked", 8).train()(x, s.mask)
    torch.testing.assert_close(masked[s.mask], by_hand(x[s.mask]), atol=1e-5, rtol=1e-5)
    assert float(masked.detach()[~s.mask].abs().max()) == 0.0


def test_whole_pre_ln_block_output_is_independent_of_padding_with_layer_norm_only():
    def outputs(norm, pad):
        model = tiny_transformer(norm, vocab=20, t_max=40, seed=0, mean=1.0, std=2.0).train()
        s = make_sequences(6, 3, 12, 20, seed=1, extra_pad=pad)
        with torch.no_grad():
            return model(s)[0]

    torch.testing.assert_close(outputs("layer", 0), outputs("layer", 20), atol=1e-5, rtol=1e-5)
    assert float((outputs("batch", 0) - outputs("batch", 20)).abs().max()) > 1e-2


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="norm is one of"):
        TokenNorm("group", 8)
    with pytest.raises(ValueError, match="min_len"):
        make_sequences(4, 5, 3, 10, seed=0)
    with pytest.raises(ValueError, match="d_model"):
        SequenceStatsConfig(d_model=1)
    with pytest.raises(ValueError, match="batch of at least 2"):
        SequenceStatsConfig(batch=1)
    with pytest.raises(ValueError, match="extra_pad"):
        SequenceStatsConfig(extra_pad=-1)
    assert isinstance(make_sequences(2, 1, 1, 2, seed=0), Sequences)


def test_trained_models_padding_changes_only_unmasked_batch_statistics():
    def accs(norm):
        r = sequence_task(SequenceTaskConfig(norm=norm, steps=60, val_size=256))
        assert r.diverged_at is None
        return r.val_acc_eval, r.val_acc_eval_padded, r.val_acc_batch_stats, r.val_acc_batch_stats_padded

    layer, batch, masked = accs("layer"), accs("batch"), accs("batch_masked")
    assert len(set(layer)) == 1  # per token: eval or train mode, padded or not, the same predictions
    assert batch[0] == batch[1]  # eval mode: fixed running statistics, padding cannot reach a real token
    assert batch[2] != batch[3]  # batch statistics: the padding is in c_𝓑 and σ²_𝓑
    assert masked[2] == masked[3]  # masked: it is not


def test_sequence_task_rejects_nonsense():
    with pytest.raises(ValueError, match="norm is one of"):
        SequenceTaskConfig(norm="group")
    with pytest.raises(ValueError, match="steps"):
        SequenceTaskConfig(steps=0)
