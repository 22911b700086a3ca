import math

import pytest
import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn import MultiHeadAttention, attention, causal_mask, combine, fast_attention, padding_mask


def test_padding_mask_polarity_and_shape():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    mask = padding_mask(ids, pad_id=0)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[0, 0, 0].tolist() == [True, True, False, False]


def test_causal_mask_is_lower_triangular_and_offsets():
    assert causal_mask(3)[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # One query at position 4 of a cache holding 5 keys sees all of them.
    assert causal_mask(1, offset=4)[0, 0].tolist() == [[True] * 5]
    assert combine(None, None) is None


def _qkv(b=2, h=3, t=5, s=5, d=4):
    return torch.randn(b, h, t, d), torch.randn(b, h, s, d), torch.randn(b, h, s, d)


def test_causal_probabilities_are_exactly_zero_above_diagonal_and_rows_sum_to_one():
    q, k, v = _qkv()
    _, probs = attention(q, k, v, causal_mask(5))
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert torch.all(probs[..., upper] == 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5), atol=1e-6, rtol=0)


def test_padded_keys_get_exactly_zero_weight():
    q, k, v = _qkv()
    ids = torch.tensor([[4, 4, 4, 0, 0], [4, 4, 4, 4, 0]])
    _, probs = attention(q, k, v, padding_mask(ids, 0))
    assert torch.all(probs[0, :, :, 3:] == 0.0) and torch.all(probs[1, :, :, 4:] == 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5), atol=1e-6, rtol=0)


def test_all_masked_row_gives_zeros_not_nan_in_both_paths_and_gradients():
    q, k, v = (x.requires_grad_() for x in _qkv())
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, 0, 2] = False  # query 2 of sample 0 may attend nowhere
    context, probs = attention(q, k, v, mask)
    fast = fast_attention(q, k, v, mask)
    assert torch.all(probs[0, :, 2] == 0.0) and torch.all(context[0, :, 2] == 0.0)
    assert torch.all(fast[0, :, 2] == 0.0)
    (context.sum() + fast.sum()).backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_fast_path_equals_reference_fp32(causal):
    q, k, v = _qkv(t=7, s=7, d=8)
    mask = combine(padding_mask(torch.tensor([[1] * 7, [1] * 5 + [0] * 2]), 0), causal_mask(7) if causal else None)
    reference, _ = attention(q, k, v, mask)
    assert (fast_attention(q, k, v, mask) - reference).abs().max() <= 1e-6
    if causal:
        reference, _ = attention(q, k, v, causal_mask(7))
        assert (fast_attention(q, k, v, is_causal=True) - reference).abs().max() <= 1e-6


def _mha_pair(d=16, h=4):
    ours = MultiHeadAttention(ModelConfig(d_model=d, n_heads=h, dropout=0.0)).eval()
    theirs = nn.MultiheadAttention(d, h, dropout=0.0, batch_first=True).eval()
    with torch.no_grad():
        wq, wk, wv = theirs.in_proj_weight.chunk(3)
        bq, bk, bv = theirs.in_proj_bias.chunk(3)
        for lin, w, b in ((ours.w_q, wq, bq), (ours.w_k, wk, bk), (ours.w_v, wv, bv)):
            lin.weight.copy_(w)
            lin.bias.copy_(torch.randn_like(b))
        theirs.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ours.w_o.weight.copy_(theirs.out_proj.weight)
        ours.w_o.bias.copy_(torch.randn_like(ours.w_o.bias))
        theirs.out_proj.bias.copy_(ours.w_o.bias)
    return ours, theirs


def _capture_probs(module):
    seen = []
    handle = module.hook_probs.register_forward_hook(lambda m, i, out: seen.append(out))
    return seen, handle


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_multi_head_attention_matches_torch(kind):
    ours, theirs = _mha_pair()
    x = torch.randn(3, 6, 16)
    memory = torch.randn(3, 9, 16) if kind == "cross" else x
    keys = torch.ones(3, memory.size(1), dtype=torch.long)
    keys[1, -3:] = 0
    keys[2, -1:] = 0
    expected, expected_probs = theirs(x, memory, memory, key_padding_mask=keys == 0, average_attn_weights=False)
    mask = padding_mask(keys, 0)
    fast = ours(x, memory=None if kind == "self" else memory, mask=mask)
    assert (fast - expected).abs().max() <= 1e-5
    seen, handle = _capture_probs(ours)
    slow = ours(x, memory=None if kind == "self" else memory, mask=mask)
    handle.remove()
    assert (slow - expected).abs().max() <= 1e-5
    assert seen[0].shape == (3, 4, 6, memory.size(1))
    assert (seen[0] - expected_probs).abs().max() <= 1e-6


def test_scores_are_scaled_by_one_over_sqrt_head_width():
    ours, _ = _mha_pair(d=8, h=2)
    scores, scaled = [], []
    ours.hook_scores.register_forward_hook(lambda m, i, o: scores.append(o))
    ours.hook_scaled.register_forward_hook(lambda m, i, o: scaled.append(o))
    ours(torch.randn(1, 3, 8))
    torch.testing.assert_close(scaled[0], scores[0] / math.sqrt(4))
