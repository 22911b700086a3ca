"""The flat decoding step computes the module path's logits bit for bit, and steps aside for hooks."""

import copy

import pytest
import torch

from glassformer.config import get_preset
from glassformer.generate import Stopping, generate_lm
from glassformer.inspect import record, step_by_step
from glassformer.models import build_model
from glassformer.speed import optimize_for_inference
from glassformer.speed.decode_step import FlatDecode

PROMPTS = [[5, 6, 7, 8], [9, 10]]  # two lengths: the left-padded batch passes a key-padding mask
CONFIGS = {
    "gpt2 pre-norm, tied": ("tiny-lm", {}),
    "post-norm, sinusoidal, untied": ("tiny-lm", dict(norm="post", positions="sinusoidal", tie_output=False)),
    "llama: rmsnorm, rotary, gqa, swiglu": ("small-llama", dict(d_model=64, n_heads=4, n_kv_heads=2, d_ff=128,
                                                                n_layers=2)),
    "qwen3 per-head norms": ("small-llama", dict(d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, n_layers=2,
                                                 qk_norm=True)),
}


def _models(preset, changes, **switches):
    """(plain, prepared with the flat step, prepared without it), the same weights.

    The flat step's own loop over the layers (not the C layers of `native_layers`, which equal
    it within rounding and are tested in test_speed_native_layers.py).
    """
    switches.setdefault("native_layers", False)
    torch.manual_seed(0)
    plain = build_model(get_preset(preset).replace(vocab_size=40, max_len=64, **changes)).eval()
    flat, modules = copy.deepcopy(plain), copy.deepcopy(plain)
    assert optimize_for_inference(flat, **switches).flat_decode
    assert not optimize_for_inference(modules, flat_decode=False, **switches).flat_decode
    return plain, flat, modules


def _count_flat_steps(model):
    calls = []
    original = model.forward.step
    model.forward.step = lambda *args: calls.append(1) or original(*args)
    return calls


@pytest.mark.parametrize("name", CONFIGS)
def test_flat_step_gives_the_module_paths_logits_exactly_and_the_plain_models_tokens(name):
    _check_flat_against_modules(*_models(*CONFIGS[name]))


@pytest.mark.parametrize("switches", [dict(fused_qkv=False), dict(small_batch=False, weights="bf16")])
def test_flat_step_without_fused_qkv_and_with_bf16_weights(switches):
    _check_flat_against_modules(*_models(*CONFIGS["llama: rmsnorm, rotary, gqa, swiglu"], **switches),
                                same_as_plain="weights" not in switches)


def _check_flat_against_modules(plain, flat, modules, same_as_plain=True):
    assert isinstance(flat.forward, FlatDecode) and "forward" not in vars(modules)
    steps = _count_flat_steps(flat)
    stopping = Stopping(max_new_tokens=10)
    got = generate_lm(flat, PROMPTS, stopping=stopping, keep_logits=True)
    expected = generate_lm(modules, PROMPTS, stopping=stopping, keep_logits=True)
    assert len(steps) == 9  # every step after the prompt's
    for a, b in zip(got, expected):
        assert a.tokens == b.tokens
        assert torch.equal(a.logits, b.logits)
    if same_as_plain:  # bf16 weights round the products: tokens may differ from fp32's
        assert [g.tokens for g in got] == [g.tokens for g in generate_lm(plain, PROMPTS, stopping=stopping)]


def test_hooks_step_by_step_and_replaced_modules_send_steps_to_the_module_path():
    plain, flat, _ = _models("tiny-lm", {})
    steps = _count_flat_steps(flat)
    stopping = Stopping(max_new_tokens=6)
    seen = []
    handle = flat.decoder.layers[1].ffn.hook_hidden.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    generate_lm(flat, [[5, 6, 7]], stopping=stopping)
    handle.remove()
    assert seen == [3, 1, 1, 1, 1, 1] and steps == []  # the prompt, then each step, all through the hook
    with record(flat, names="*.hook_probs") as rec:
        generate_lm(flat, [[5, 6, 7]], stopping=stopping)
    assert steps == [] and len(rec.names()) == 3
    with step_by_step(flat):
        generate_lm(flat, [[5, 6, 7]], stopping=stopping)
    assert steps == []
    generate_lm(flat, [[5, 6, 7]], stopping=stopping)
    assert len(steps) == 5  # nothing watches any more
    # A feed-forward replaced after the transform (as peft does) is what decoding then runs.
    layer = flat.decoder.layers[0]
    layer.ffn = copy.deepcopy(plain.decoder.layers[0].ffn)
    layer.ffn.w_2.bias.data += 1.0
    plain.decoder.layers[0].ffn.w_2.bias.data += 1.0
    stop = Stopping(max_new_tokens=8)
    assert [g.tokens for g in generate_lm(flat, PROMPTS, stopping=stop)] == \
        [g.tokens for g in generate_lm(plain, PROMPTS, stopping=stop)]
    assert len(steps) == 5


def test_models_the_flat_step_does_not_know_keep_the_module_path():
    for preset, changes in (("tiny-lm", dict(sliding_window=4)), ("tiny-lm", dict(head="classify", n_labels=3))):
        torch.manual_seed(0)
        model = build_model(get_preset(preset).replace(vocab_size=40, max_len=64, **changes)).eval()
        done = optimize_for_inference(model)
        assert not done.flat_decode and "forward" not in vars(model)
        assert "flat function" not in done.summary()
