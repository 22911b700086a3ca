import math

import pytest
import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.inspect import step_by_step
from glassformer.nn import (
    CrossAttention,
    KVCache,
    SelfAttention,
    causal_mask,
    combine,
    padding_mask,
    scaled_dot_product_attention,
    softmax_over_keys,
)


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


def _probs(q, k, mask):
    """The probabilities as the step-by-step path computes them."""
    scaled = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return softmax_over_keys(scaled.masked_fill(~mask, float("-inf")), mask)


def _reference(q, k, v, mask):
    """Attention written out in float64, independently of glassformer: rows with no key give 0."""
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.size(-1))
    weights = torch.exp(scores - scores.max(-1, keepdim=True).values) * mask
    total = weights.sum(-1, keepdim=True)
    return (weights / total.clamp(min=1e-300) @ v.double()).float()


def test_causal_probabilities_are_exactly_zero_above_diagonal_and_rows_sum_to_one():
    q, k, _ = _qkv()
    probs = _probs(q, k, causal_mask(5))
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert torch.all(probs[..., upper] == 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5), atol=1e-6, rtol=0)


def test_padded_keys_get_exactly_zero_weight():
    q, k, _ = _qkv()
    ids = torch.tensor([[4, 4, 4, 0, 0], [4, 4, 4, 4, 0]])
    probs = _probs(q, k, padding_mask(ids, 0))
    assert torch.all(probs[0, :, :, 3:] == 0.0) and torch.all(probs[1, :, :, 4:] == 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5), atol=1e-6, rtol=0)


def test_all_masked_row_gives_zeros_not_nan_in_both_paths_and_gradients():
    q, k, v = (x.requires_grad_() for x in _qkv())
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, 0, 2] = False  # query 2 of sample 0 may attend nowhere
    probs = _probs(q, k, mask)
    context = probs @ v
    fused = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(probs[0, :, 2] == 0.0) and torch.all(context[0, :, 2] == 0.0)
    assert torch.all(fused[0, :, 2] == 0.0)
    (context.sum() + fused.sum()).backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_fused_kernel_equals_the_written_out_equation_fp32(causal):
    q, k, v = _qkv(t=7, s=7, d=8)
    mask = combine(padding_mask(torch.tensor([[1] * 7, [1] * 5 + [0] * 2]), 0), causal_mask(7) if causal else None)
    assert (scaled_dot_product_attention(q, k, v, mask) - _reference(q, k, v, mask)).abs().max() <= 1e-6
    if causal:
        expected = _reference(q, k, v, causal_mask(7))
        assert (scaled_dot_product_attention(q, k, v, is_causal=True) - expected).abs().max() <= 1e-6


def _mha_pair(kind="self", d=16, h=4):
    module = SelfAttention if kind == "self" else CrossAttention
    ours = module(ModelConfig(d_model=d, n_heads=h, dropout=0.0)).eval()
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


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_multi_head_attention_matches_torch_in_both_modes(kind):
    ours, theirs = _mha_pair(kind)
    x = torch.randn(3, 6, 16)
    memory = torch.randn(3, 9, 16) if kind == "cross" else x
    keys = torch.ones(3, memory.size(1), dtype=torch.long)
    keys[1, -3:] = 0
    keys[2, -1:] = 0
    expected, expected_probs = theirs(x, memory, memory, key_padding_mask=keys == 0, average_attn_weights=False)
    mask = padding_mask(keys, 0)
    call = (lambda: ours(x, mask=mask)) if kind == "self" else (lambda: ours(x, memory, mask=mask))
    seen = []
    ours.hook_probs.register_forward_hook(lambda m, i, out: seen.append(out))
    fused = call()
    assert seen == []  # the fused kernel has no probabilities to show
    with step_by_step(ours):
        stepwise = call()
    assert not ours.step_by_step  # the mode ends with the block
    assert (fused - expected).abs().max() <= 1e-5
    assert (stepwise - expected).abs().max() <= 1e-5
    assert (stepwise - fused).abs().max() <= 1e-6
    assert seen[0].shape == (3, 4, 6, memory.size(1))
    assert (seen[0] - expected_probs).abs().max() <= 1e-6


def test_scores_are_scaled_by_one_over_sqrt_head_width():
    ours, _ = _mha_pair(d=8, h=2)
    scores, scaled = [], []
    ours.hook_scores.register_forward_hook(lambda m, i, o: scores.append(o))
    ours.hook_scaled.register_forward_hook(lambda m, i, o: scaled.append(o))
    with step_by_step(ours):
        ours(torch.randn(1, 3, 8))
    torch.testing.assert_close(scaled[0], scores[0] / math.sqrt(4))


def test_one_query_decoding_equals_the_full_causal_pass_in_both_modes():
    torch.manual_seed(0)
    attn = SelfAttention(ModelConfig(d_model=32, n_heads=4, dropout=0.0)).eval()
    x = torch.randn(2, 9, 32)
    full = attn(x, causal=True)[:, -1]
    masked = []
    attn.hook_masked.register_forward_hook(lambda m, i, o: masked.append(o))
    with torch.no_grad():
        for mode in (False, True):
            cache = KVCache(9)
            with step_by_step(attn, on=mode):
                attn(x[:, :8], causal=True, cache=cache)
                step = attn(x[:, 8:], causal=True, cache=cache, cache_pos=8)[:, -1]
            torch.testing.assert_close(step, full, atol=1e-6, rtol=0)
    # Step by step, even the one-query step passes its (all-allowed) causal mask through hook_masked.
    assert [tuple(m.shape) for m in masked] == [(2, 4, 8, 8), (2, 4, 1, 9)]
    assert torch.isfinite(masked[1]).all()
