"""The speed paths compute what the plain ones do: fused Q/K/V, the small-batch Linear, one-query decoding."""

import pytest
import torch
import torch.nn.functional as F

from glassformer.config import ModelConfig, get_preset
from glassformer.models import build_model
from glassformer.models.build import fill
from glassformer.nn import MultiHeadAttention
from glassformer.nn.linear import BAG_ROWS, SMALL_ROWS, Linear, _bags, column_major, is_column_major


def _pair(fused_config_changes=None, **changes):
    config = ModelConfig(d_model=32, n_heads=4, dropout=0.0, **changes)
    plain = MultiHeadAttention(config)
    fused = MultiHeadAttention(config.replace(fused_qkv=True, **(fused_config_changes or {})))
    fused.load_state_dict(plain.state_dict())
    return plain, fused


@pytest.mark.parametrize("cross", [False, True])
def test_fused_qkv_matches_separate_projections_with_gradients(cross):
    plain, fused = _pair()
    x = torch.randn(2, 5, 32)
    memory = torch.randn(2, 7, 32) if cross else None
    outs = [m(x, memory=memory, causal=not cross) for m in (plain, fused)]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)
    for out in outs:
        out.square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_fused_qkv_keeps_parameter_names():
    plain, fused = _pair()
    assert list(plain.state_dict()) == list(fused.state_dict())


def test_fused_qkv_hook_points_see_the_same_tensors():
    plain, fused = _pair()
    x = torch.randn(1, 4, 32)
    seen = {}
    for label, module in (("plain", plain), ("fused", fused)):
        handles = [
            getattr(module, f"hook_{n}").register_forward_hook(
                lambda m, i, o, key=(label, n): seen.__setitem__(key, o.detach().clone())
            )
            for n in ("q", "k", "v", "q_heads", "context")
        ]
        module(x, causal=True)
        for handle in handles:
            handle.remove()
    for n in ("q", "k", "v", "q_heads", "context"):
        torch.testing.assert_close(seen[("plain", n)], seen[("fused", n)], atol=1e-6, rtol=0)


def test_fused_weights_kept_without_grad_are_refreshed_after_an_update():
    plain, fused = _pair()
    x = torch.randn(1, 1, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), atol=1e-6, rtol=0)
        for m in (plain, fused):
            m.w_k.weight.mul_(2.0)  # in place: the kept copy must notice
        torch.testing.assert_close(fused(x), plain(x), atol=1e-6, rtol=0)
    state = {k: torch.randn_like(v) for k, v in plain.state_dict().items()}
    plain.load_state_dict(state)
    fused.load_state_dict(state)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), plain(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["column-major", "row-major"])
@pytest.mark.parametrize("bias", [True, False])
def test_small_batch_paths_equal_f_linear(threads, layout, bias):
    # 131 outputs: 2 or 3 blocks of 65 or 43 and a remainder; 10 inputs: bags of 3, 3 and 4 on 3 threads.
    torch.manual_seed(0)
    layer = Linear(10, 131, bias=bias)
    if layout == "row-major":
        layer.weight = torch.nn.Parameter(layer.weight.detach().contiguous())
    torch.set_num_threads(threads)
    for rows in (1, 2, BAG_ROWS, BAG_ROWS + 1, SMALL_ROWS, SMALL_ROWS + 1):
        x = torch.randn(rows, 1, 10)
        expected = F.linear(x, layer.weight, layer.bias)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5, msg=f"{rows} rows")
        with torch.inference_mode():
            torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5, msg=f"{rows} rows")


def test_linear_is_nn_linear_with_a_column_major_weight_and_the_same_values_and_gradients():
    torch.manual_seed(0)
    ours = Linear(24, 40)
    torch.manual_seed(0)
    plain = torch.nn.Linear(24, 40)
    assert isinstance(ours, torch.nn.Linear) and set(ours.state_dict()) == {"weight", "bias"}
    assert ours.weight.shape == (40, 24) and ours.weight.stride() == (1, 40) and is_column_major(ours.weight)
    torch.testing.assert_close(ours.weight, plain.weight, atol=0, rtol=0)
    x = torch.randn(7, 24)
    ours(x).square().sum().backward()
    plain(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, atol=1e-5, rtol=1e-5)
    assert ours.weight.grad.stride() == (1, 40)  # gradients come in the weight's layout: no copy


def test_small_batch_paths_follow_the_weight_and_autocast():
    layer = Linear(16, 128)
    x = torch.randn(1, 16)
    with torch.no_grad():
        layer.weight.mul_(2.0)  # nothing is cached: an in-place change shows at once
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-6, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x).dtype == torch.bfloat16


def test_index_tensors_cached_under_inference_mode_serve_plain_no_grad_calls():
    _bags.cache_clear()
    torch.set_num_threads(2)
    layer = Linear(12, 130)
    x = torch.randn(1, 12)
    expected = F.linear(x, layer.weight, layer.bias)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)
    assert _bags.cache_info().currsize == 1
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)
    assert _bags.cache_info().hits == 1


def test_fill_draws_in_row_major_order_whatever_the_layout():
    torch.manual_seed(0)
    rows = torch.nn.init.normal_(torch.empty(5, 3))
    cols = column_major(torch.zeros(5, 3))
    torch.manual_seed(0)
    fill(cols, torch.nn.init.normal_)
    assert torch.equal(cols, rows) and cols.stride() == (1, 5)


@pytest.mark.parametrize("preset", ["tiny-lm", "tiny-seq2seq"])
def test_tied_output_shares_one_column_major_table(preset):
    config = get_preset(preset).replace(tie_output=True)
    model = build_model(config)
    embed = model.embed if preset == "tiny-lm" else model.tgt_embed
    assert model.lm_head.weight is embed.token.weight and is_column_major(model.lm_head.weight)
    if preset == "tiny-seq2seq" and config.tie_embeddings:
        assert model.src_embed.token.weight is embed.token.weight


def test_small_batch_linear_still_calls_forward_hooks():
    layer = Linear(8, 8)
    calls = []
    layer.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    with torch.no_grad():
        layer(torch.randn(1, 8))
    assert calls == [torch.Size([1, 8])]


def test_one_query_decoding_skips_nothing_the_step_by_step_path_does():
    torch.manual_seed(0)
    config = ModelConfig(family="decoder-only", vocab_size=50, d_model=32, n_heads=4, d_ff=64, n_layers=2,
                         max_len=32, norm="pre", dropout=0.0)
    model = build_model(config).eval()
    ids = torch.randint(1, 50, (2, 9))
    full = model(ids)[:, -1]
    cache = model.new_cache(9)
    with torch.no_grad():
        model(ids[:, :8], cache=cache)
        step = model(ids[:, 8:], cache=cache, cache_pos=8)[:, -1]
        torch.testing.assert_close(step, full, atol=1e-5, rtol=0)
        # With a listener the step-by-step path runs, including the (all-allowed) causal mask.
        masked = []
        hook = model.decoder.layers[0].self_attn.hook_masked.register_forward_hook(lambda m, i, o: masked.append(o))
        for layer in cache.layers:
            layer.self_attn.length = 8
        again = model(ids[:, 8:], cache=cache, cache_pos=8)[:, -1]
        hook.remove()
    torch.testing.assert_close(again, full, atol=1e-5, rtol=0)
    assert len(masked) == 1 and masked[0].shape == (2, 4, 1, 9) and torch.isfinite(masked[0]).all()


def test_dropout_zeroes_about_p_scales_the_rest_and_backpropagates_through_the_same_mask():
    from glassformer.nn.residual import apply_dropout

    module = torch.nn.Dropout(0.25)
    x = torch.randn(200, 500, requires_grad=True)
    torch.manual_seed(0)
    y = apply_dropout(module, x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    torch.manual_seed(0)
    assert torch.equal(apply_dropout(module, x), y)  # seeded: the same mask again
    module.eval()
    assert apply_dropout(module, x) is x
    module.train()
    module.p = 0.0
    assert apply_dropout(module, x) is x
