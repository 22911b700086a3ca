"""The modern decoder parts: RMSNorm, rotary positions (default and llama3), the gated feed-forward
network, grouped-query attention with its KV cache, sliding windows, q/k norms, bias switches."""

import math

import pytest
import torch

from glassformer.config import ModelConfig, get_preset
from glassformer.errors import ConfigError
from glassformer.inspect.recorder import record
from glassformer.models import build_model, count_parameters
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.masks import causal_mask
from glassformer.nn.rms_norm import RMSNorm
from glassformer.nn.rotary import RotaryEmbedding, apply_rotary, rope_frequencies

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


def tiny(**changes) -> ModelConfig:
    sizes = dict(vocab_size=50, d_model=32, n_heads=4, n_kv_heads=2, d_ff=40, n_layers=2, max_len=64)
    return get_preset("small-llama").replace(**{**sizes, **changes})


def test_rms_norm_is_x_over_root_mean_square_times_gain():
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(2, 3, 6)
    expected = x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * torch.arange(1.0, 7.0)
    assert torch.allclose(norm(x), expected, atol=1e-6)
    assert norm(x.double()).dtype == torch.float64


def test_rotation_by_position_keeps_norms_and_makes_scores_relative():
    torch.manual_seed(0)
    rope = RotaryEmbedding(tiny())
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> float:
        cos_m, sin_m = rope(torch.tensor([[m]]))
        cos_n, sin_n = rope(torch.tensor([[n]]))
        return float((apply_rotary(q, cos_m, sin_m) * apply_rotary(k, cos_n, sin_n)).sum())

    assert score(7, 3) == pytest.approx(score(24, 20), abs=1e-5)  # depends on m - n only
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)
    cos, sin = rope(torch.tensor([[0, 5, 9]]))
    x = torch.randn(1, 1, 3, 8)
    rotated = apply_rotary(x, cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(rotated[..., 0, :], x[..., 0, :])  # position 0 is not turned


def test_frequencies_match_transformers_default_and_llama3():
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for theta, scaling in ((10000.0, None), (500000.0, LLAMA3)):
        hf = transformers.LlamaConfig(
            hidden_size=256, num_attention_heads=2, max_position_embeddings=512,
            rope_parameters={"rope_theta": theta, **(scaling or {"rope_type": "default"})},
        )
        kind = (scaling or {}).get("rope_type", "default")
        if kind == "default":
            from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

            expected = LlamaRotaryEmbedding.compute_default_rope_parameters(hf)[0]
        else:
            expected = ROPE_INIT_FUNCTIONS[kind](hf)[0]
        ours = rope_frequencies(128, theta, scaling)
        assert ours.shape == (64,) and torch.allclose(ours, expected, rtol=1e-6, atol=0)
    scaled, plain = rope_frequencies(128, 500000.0, LLAMA3), rope_frequencies(128, 500000.0)
    assert torch.equal(scaled[:4], plain[:4])  # short wavelengths kept
    assert torch.allclose(scaled[-4:], plain[-4:] / 8)  # long ones stretched by the factor


def test_swiglu_is_silu_gate_times_up_then_down():
    config = tiny()
    ffn = GatedFeedForward(config).eval()
    x = torch.randn(2, 5, 32)
    gate, up, down = ffn.w_gate.weight, ffn.w_up.weight, ffn.w_down.weight
    expected = (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T
    assert torch.allclose(ffn(x), expected, atol=1e-6)
    assert ffn.w_gate.bias is None
    geglu = GatedFeedForward(config.replace(activation="gelu_tanh", ffn_bias=True))
    assert geglu.w_up.bias is not None
    expected = (torch.nn.functional.gelu(geglu.w_gate(x), approximate="tanh") * geglu.w_up(x))
    assert torch.allclose(geglu(x), geglu.w_down(expected), atol=1e-6)


def test_grouped_query_attention_equals_repeated_kv_heads_and_caches_only_kv_heads():
    torch.manual_seed(0)
    config = tiny(n_heads=4, n_kv_heads=2)
    model = build_model(config).eval()
    attn = model.decoder.layers[0].self_attn
    assert attn.w_k.weight.shape == (16, 32) and attn.w_q.weight.shape == (32, 32)  # 2 kv heads of 8
    # The same model as plain multi-head attention: each kv head's weights copied to its 2 query heads.
    full = build_model(config.replace(n_kv_heads=None)).eval()
    state = dict(model.state_dict())
    for name, tensor in list(state.items()):
        if name.endswith(("w_k.weight", "w_v.weight")):
            state[name] = tensor.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
    full.load_state_dict(state)
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        assert (model(ids) - full(ids)).abs().max() < 1e-5
        cache = model.new_cache(16)
        model(ids, cache=cache)
    assert cache.layers[0].self_attn.k.shape == (2, 2, 16, 8)  # [B, H_kv, L, D]
    with pytest.raises(ConfigError, match="n_kv_heads=3 does not divide n_heads=4"):
        tiny(n_kv_heads=3)


def test_multi_query_attention_has_one_kv_head():
    model = build_model(tiny(n_kv_heads=1))
    assert model.decoder.layers[0].self_attn.w_v.weight.shape == (8, 32)


def test_sliding_window_mask_and_model():
    mask = causal_mask(5, window=2)[0, 0]
    assert mask.int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
    torch.manual_seed(0)
    model = build_model(tiny(sliding_window=3, n_layers=1)).eval()
    ids = torch.randint(0, 50, (1, 10))
    with torch.no_grad():
        full = model(ids)
        # One layer with a window of 3: the last position reads positions 7, 8, 9 only.
        assert (model(ids[:, 7:], positions=torch.arange(7, 10)[None])[:, -1] - full[:, -1]).abs().max() < 1e-5
        cache = model.new_cache(16)
        steps = [model(ids[:, :4], cache=cache)] + [model(ids[:, i:i + 1], cache=cache, cache_pos=i) for i in range(4, 10)]
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_bias_switches_and_qk_norm():
    model = build_model(tiny(qkv_bias=True, qk_norm=True))
    attn = model.decoder.layers[0].self_attn
    assert attn.w_q.bias is not None and attn.w_v.bias is not None and attn.w_o.bias is None
    assert isinstance(attn.q_norm, RMSNorm) and attn.q_norm.weight.shape == (8,)
    assert model.decoder.layers[0].ffn.w_up.bias is None
    assert not model.config.tie_output and model.lm_head.proj.weight is not model.embed.token.weight
    # The defaults keep the paper's model: every bias on, LayerNorm, no gate.
    paper = build_model(get_preset("tiny-lm"))
    assert paper.decoder.layers[0].self_attn.w_o.bias is not None
    assert isinstance(paper.decoder.final_norm, torch.nn.LayerNorm)


def test_parameter_count_is_arithmetic_of_the_parts():
    c = tiny()
    kv = c.kv_heads * c.d_head
    per_layer = c.d_model * (2 * c.d_model + 2 * kv) + 3 * c.d_model * c.d_ff + 2 * c.d_model
    assert count_parameters(build_model(c)) == 2 * c.vocab_size * c.d_model + c.n_layers * per_layer + c.d_model


def test_hook_points_declare_rotated_q_and_k_and_gated_hidden():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    ids = torch.randint(0, 50, (2, 7))
    with record(model) as recording, torch.no_grad():
        stepwise = model(ids)  # recording every point runs attention one operation at a time
    with torch.no_grad():
        assert (stepwise - model(ids)).abs().max() < 1e-5  # same as the fused kernel sharing kv heads
    assert recording.records[-1].name == "lm_head.hook_probs"
    shapes = {r.name: (tuple(r.shape), tuple(r.dims)) for r in recording.records}
    layer = "decoder.layers.0."
    assert shapes[layer + "self_attn.hook_q_rot"] == ((2, 4, 7, 8), ("B", "H", "T", "D"))
    assert shapes[layer + "self_attn.hook_k_rot"] == ((2, 2, 7, 8), ("B", "H_kv", "S", "D"))
    assert shapes[layer + "self_attn.hook_k"] == ((2, 7, 16), ("B", "S", "A_kv"))
    assert shapes[layer + "ffn.hook_gate"] == ((2, 7, 40), ("B", "T", "d_ff"))
    assert shapes[layer + "ffn.hook_hidden"] == ((2, 7, 40), ("B", "T", "d_ff"))
    assert "embed.hook_positions" not in shapes  # rotary positions add nothing to the embedding
    assert math.isclose(model.rotary.inv_freq[1].item(), 10000 ** (-2 / 8), rel_tol=1e-6)


def test_speed_transform_fuses_grouped_qkv_with_the_same_logits():
    from glassformer.speed import optimize_for_inference

    torch.manual_seed(0)
    model = build_model(tiny(qkv_bias=True)).eval()
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        before = model(ids)
        done = optimize_for_inference(model, small_batch=False)
        after = model(ids)
    assert done.fused_qkv == 2 and (after - before).abs().max() < 1e-5


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(rope_scaling={"rope_type": "yarn"}), "rope_scaling.rope_type='yarn' is not one of: default, llama3"),
        (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "llama3 needs number.*low_freq_factor"),
        (dict(norm_type="batchnorm"), "norm_type='batchnorm' is not one of: layernorm, rmsnorm"),
        (dict(family="encoder-only"), "positions='rotary' is built for the decoder-only family"),
        (dict(d_model=36, n_heads=4, n_kv_heads=None), "d_head=9 must be even"),
    ],
)
def test_invalid_modern_settings_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)
