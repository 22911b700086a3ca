"""The decoding step's layers in one C call: the flat step's numbers within fp32 rounding, and its
own loop wherever the C code does not fit the model or the call."""

import copy
import threading

import pytest
import torch

from glassformer.config import get_preset
from glassformer.generate import Stopping, beam_search_lm, generate_lm
from glassformer.models import build_model
from glassformer.speed import native, optimize_for_inference
from glassformer.nn.feedforward import ACTIVATIONS
from glassformer.speed.native_layers import ACTIVATION_CODES, MAX_ROWS, NativeLayers

pytestmark = pytest.mark.skipif(not native.available(), reason=f"native kernels: {native.why_unavailable()}")

PROMPTS = [[5, 6, 7, 8], [9, 10]]  # two lengths: the left-padded batch passes a key-padding mask
CONFIGS = {
    "gpt2 pre-norm, tied": ("tiny-lm", {}),
    "post-norm, sinusoidal, untied, relu": ("tiny-lm", dict(norm="post", positions="sinusoidal", tie_output=False,
                                                            activation="relu")),
    "llama: rmsnorm, rotary, gqa, swiglu": ("small-llama", dict(d_model=64, n_heads=4, n_kv_heads=2, d_ff=128,
                                                                n_layers=2)),
    "gelu (erf), no biases": ("tiny-lm", dict(activation="gelu", bias=False)),
    # Widths that leave each thread's share of features a remainder after its four parts, and
    # products whose outputs are no multiple of 8.
    "odd widths": ("tiny-lm", dict(d_model=38, n_heads=2, d_ff=102)),
    "scaled embeddings, embedding norm": ("tiny-lm", dict(scale_embeddings=True, embedding_norm=True)),
}
TOLERANCE = dict(atol=1e-5, rtol=1e-5)  # fp32 sums in another order; the logits are ~0.1-1


@pytest.fixture
def c_calls(monkeypatch):
    """The results of every NativeLayers call: None where the call fell back to the flat step's loop."""
    results = []
    original = NativeLayers.__call__

    def counted(self, *args):
        out = original(self, *args)
        results.append(out)
        return out

    monkeypatch.setattr(NativeLayers, "__call__", counted)
    return results


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh", "silu"])
def test_the_c_activations_equal_pytorchs_within_a_few_ulps_of_the_output(name):
    """8 floats at a time in AVX2 (exp by a polynomial, erf by Abramowitz and Stegun): against fp64."""
    x = torch.linspace(-30.0, 30.0, 120_007)  # not a multiple of 8: the last few too
    want = ACTIVATIONS[name](x.double())
    for gate in (None, torch.linspace(2.0, -2.0, x.numel())):
        a = x.clone() if gate is None else gate.clone()  # gated: act(x) * gate, computed in a
        native.library().activation(a.data_ptr(), None if gate is None else x.data_ptr(), x.numel(),
                                    ACTIVATION_CODES[ACTIVATIONS[name]], 2)
        expected = want if gate is None else want * gate.double()
        torch.testing.assert_close(a.double(), expected, atol=2e-6, rtol=2e-6)


def c_and_flat(preset, changes, **switches):
    """(with the C layers, the flat step's own loop), the same weights, both prepared."""
    torch.manual_seed(0)
    model = build_model(get_preset(preset).replace(vocab_size=40, max_len=64, **changes)).eval()
    c_layers, flat = model, copy.deepcopy(model)
    done = optimize_for_inference(c_layers, **switches)
    assert done.native_layers and "its layers in C" in done.summary()
    assert not optimize_for_inference(flat, native_layers=False, **switches).native_layers
    return c_layers, flat


def _same_generations(a, b, prompts=PROMPTS, **kwargs):
    stopping = Stopping(max_new_tokens=10)
    got = generate_lm(a, prompts, stopping=stopping, keep_logits=True, **kwargs)
    want = generate_lm(b, prompts, stopping=stopping, keep_logits=True, **kwargs)
    for x, y in zip(got, want):
        assert x.tokens == y.tokens
        torch.testing.assert_close(x.logits, y.logits, **TOLERANCE)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("column_major", [False, True])
@pytest.mark.parametrize("weights", ["fp32", "bf16"])
def test_c_layers_give_the_flat_steps_logits_and_tokens(name, column_major, weights, fixed_choice, c_calls):
    fixed_choice(column_major, "bfloat16" if weights == "bf16" else "float32")
    c_layers, flat = c_and_flat(*CONFIGS[name], weights=weights)
    # The whole step in C: the embedding (a tied bf16 table too), rotary angles, final norm and output projection.
    step = c_layers.forward.native
    assert step.embeds and step.projects and step.rotates == (c_layers.rotary is not None)
    _same_generations(c_layers, flat)
    _same_generations(c_layers, flat, prompts=PROMPTS[:1])  # one row, no mask
    assert len(c_calls) == 2 * 10 and all(r is not None for r in c_calls)  # each prompt, then 9 steps


def test_an_embedding_the_c_code_does_not_know_is_computed_first_and_a_head_scale_is_applied(c_calls):
    torch.manual_seed(0)
    model = build_model(get_preset("tiny-lm").replace(vocab_size=40, max_len=64)).eval()
    model.embed.token.__class__ = type("OwnEmbedding", (torch.nn.Embedding,), {})  # the C code embeds only its own
    model.lm_head.scale = 0.5
    c_layers, flat = model, copy.deepcopy(model)
    assert optimize_for_inference(c_layers).native_layers
    optimize_for_inference(flat, native_layers=False)
    step = c_layers.forward.native
    assert not step.embeds and step.projects and step.ends.head_scale == 0.5
    _same_generations(c_layers, flat)
    assert c_calls and all(r is not None for r in c_calls)


def test_an_activation_or_scale_reassigned_after_the_transform_leaves_the_c_code(c_calls):
    """An ablation by assignment (not a hook): the flat step's loop reads the new attribute."""
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    for model in (c_layers, flat):
        model.decoder.layers[1].ffn.activation = torch.relu
    _same_generations(c_layers, flat)
    assert c_calls and all(r is None for r in c_calls)
    c_calls.clear()
    for model in (c_layers, flat):
        model.decoder.layers[1].ffn.activation = ACTIVATIONS["gelu_tanh"]  # as built: the C code again
        model.lm_head.scale = 0.5  # read by value
    _same_generations(c_layers, flat)
    assert c_calls and all(r is None for r in c_calls)
    c_layers.lm_head.scale = flat.lm_head.scale = 1.0
    c_calls.clear()
    _same_generations(c_layers, flat)
    assert c_calls and all(r is not None for r in c_calls)


@pytest.mark.parametrize("where", ["layer", "final"])
def test_a_norms_eps_reassigned_after_the_transform_leaves_the_c_code(where, c_calls):
    c_layers, flat = c_and_flat(*CONFIGS["llama: rmsnorm, rotary, gqa, swiglu"])
    for model in (c_layers, flat):
        norm = model.decoder.layers[0].ffn_residual.norm if where == "layer" else model.decoder.final_norm
        norm.eps = 10.0  # large enough to change the logits well beyond the tolerance
    _same_generations(c_layers, flat)
    assert c_calls and all(r is None for r in c_calls)


@pytest.mark.parametrize("threads", [1, 3])
def test_any_thread_count_gives_the_same_numbers(threads, c_calls):
    c_layers, flat = c_and_flat(*CONFIGS["llama: rmsnorm, rotary, gqa, swiglu"])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _same_generations(c_layers, flat)
    finally:
        torch.set_num_threads(before)
    assert c_calls and all(r is not None for r in c_calls)


def test_beam_search_reorders_the_caches_the_c_layers_read(c_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    got, want = (beam_search_lm(model, PROMPTS, end_id=0, beam_size=3, max_new_tokens=8) for model in (c_layers, flat))
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    assert [h.log_prob for hs in got for h in hs] == pytest.approx([h.log_prob for hs in want for h in hs], rel=1e-5)
    assert c_calls and all(r is not None for r in c_calls)


def test_more_rows_than_the_c_code_takes_fall_back_to_the_loop(c_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    prompts = [[1 + i % 30, 2 + i % 29] for i in range(MAX_ROWS + 1)]
    _same_generations(c_layers, flat, prompts=prompts)
    assert c_calls and all(r is None for r in c_calls)


def test_weights_changed_in_place_are_read_and_replaced_ones_end_the_c_path(c_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    with torch.no_grad():  # in place: the same storage, and the C code reads the new values
        for model in (c_layers, flat):
            model.decoder.layers[0].ffn.w_1.bias.add_(0.5)
            model.decoder.layers[1].self_attn.qkv_weight.mul_(1.5)
    _same_generations(c_layers, flat)
    assert c_calls and all(r is not None for r in c_calls)
    c_calls.clear()
    for model in (c_layers, flat):  # new storage: the C code's pointer would be stale
        model.decoder.layers[1].ffn.w_2.weight.data = model.decoder.layers[1].ffn.w_2.weight.data * 2.0
    _same_generations(c_layers, flat)
    assert c_calls and all(r is None for r in c_calls)


@pytest.mark.parametrize("where", ["token", "position"])
def test_an_id_outside_its_table_leaves_the_c_code_and_fails_as_the_modules_do(where, c_calls):
    c_layers, _ = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])  # vocabulary 40, 64 positions
    ids, positions = torch.tensor([[40 if where == "token" else 5]]), torch.tensor([[64 if where == "position" else 0]])
    cache = c_layers.new_cache(8)
    with torch.inference_mode():
        with pytest.raises(IndexError):
            type(c_layers).forward(c_layers, ids, positions=positions, cache=c_layers.new_cache(8))
        with pytest.raises(IndexError):
            c_layers(ids, positions=positions, cache=cache)
    assert c_calls == [None] and cache.length == 0  # the C code checked the ids before writing anything


def test_the_products_of_a_model_decoded_in_c_are_measured_among_the_c_kernels():
    torch.manual_seed(0)
    model = build_model(get_preset("small-llama").replace(vocab_size=40, max_len=64, d_model=64, n_heads=4,
                                                          n_kv_heads=2, d_ff=128, n_layers=2))
    done = optimize_for_inference(model)
    assert done.native_layers and set(done.kernels) == {"native"} and done.kernels["native"] == 2 * 4 + 1


def test_models_the_c_code_does_not_fit_keep_the_flat_steps_loop():
    torch.manual_seed(0)
    qwen3 = build_model(get_preset("small-llama").replace(vocab_size=40, max_len=64, d_model=64, n_heads=4,
                                                          n_kv_heads=2, d_ff=128, n_layers=2, qk_norm=True))
    done = optimize_for_inference(qwen3)
    assert done.flat_decode and not done.native_layers  # per-head norms: the flat step's loop
    unfused = build_model(get_preset("tiny-lm").replace(vocab_size=40, max_len=64))
    assert not optimize_for_inference(unfused, fused_qkv=False).native_layers
    assert not optimize_for_inference(build_model(get_preset("tiny-lm")), native_layers=False).native_layers


def test_without_the_c_kernels_the_flat_step_runs_its_loop(monkeypatch, tmp_path):
    monkeypatch.setenv("GLASSFORMER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GLASSFORMER_NATIVE", "0")
    native._load.cache_clear()
    try:
        model = build_model(get_preset("tiny-lm").replace(vocab_size=40, max_len=64))
        done = optimize_for_inference(model)
        assert done.flat_decode and not done.native_layers and model.forward.native is None
    finally:
        native._load.cache_clear()


@pytest.mark.parametrize("name", ["gpt2 pre-norm, tied", "llama: rmsnorm, rotary, gqa, swiglu"])
def test_a_short_prompt_goes_through_the_c_layers_causally_and_a_long_one_through_the_modules(name, c_calls):
    c_layers, _ = c_and_flat(*CONFIGS[name])
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]])  # the first row left-padded
    valid = ids != 0
    valid[1] = True
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    mask = valid[:, None, None, :]
    with torch.inference_mode():
        cache, modules_cache = c_layers.new_cache(16), c_layers.new_cache(16)
        got = c_layers(ids, mask=mask, positions=positions, cache=cache)
        want = type(c_layers).forward(c_layers, ids, mask=mask, positions=positions, cache=modules_cache)
        assert len(c_calls) == 1 and c_calls[0] is not None and cache.length == 6
        torch.testing.assert_close(got[valid], want[valid], **TOLERANCE)  # the padding's own outputs are unused
        last = c_layers(ids, mask=mask, positions=positions, cache=c_layers.new_cache(16), last_only=True)
        assert len(c_calls) == 2 and last.shape == (2, 1, 40)
        torch.testing.assert_close(last, want[:, -1:], **TOLERANCE)
        for ours, theirs in zip(cache.layers, modules_cache.layers):  # keys and values the next steps read
            for a, b in ((ours.self_attn.k, theirs.self_attn.k), (ours.self_attn.v, theirs.self_attn.v)):
                torch.testing.assert_close(a[:, :, :6][valid[:, None].expand(-1, a.size(1), -1)],
                                           b[:, :, :6][valid[:, None].expand(-1, b.size(1), -1)], **TOLERANCE)
        long_ids = torch.randint(1, 40, (1, MAX_ROWS + 1))
        long_positions = torch.arange(MAX_ROWS + 1)[None]
        got = c_layers(long_ids, positions=long_positions, cache=c_layers.new_cache(32), last_only=True)
        want = type(c_layers).forward(c_layers, long_ids, positions=long_positions, cache=c_layers.new_cache(32),
                                      last_only=True)
        assert len(c_calls) == 2 and torch.equal(got, want)  # more tokens than the C layers take: the module path


def test_threads_decoding_at_once_with_one_model_get_their_own_results(c_calls):
    """ctypes lets go of the GIL during the C call: two generations in two threads run it at once."""
    c_layers, _ = c_and_flat(*CONFIGS["llama: rmsnorm, rotary, gqa, swiglu"])
    prompts = [[[5, 6, 7]], [[9, 10, 11, 12], [13]]]
    stopping = Stopping(max_new_tokens=12)
    alone = [[g.tokens for g in generate_lm(c_layers, p, stopping=stopping)] for p in prompts]
    results: dict = {}

    def generate(i: int) -> None:
        results[i] = [[g.tokens for g in generate_lm(c_layers, prompts[i % 2], stopping=stopping)] for _ in range(5)]

    threads = [threading.Thread(target=generate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == [alone[i % 2]] * 5 for i in range(4))
    assert all(r is not None for r in c_calls)
