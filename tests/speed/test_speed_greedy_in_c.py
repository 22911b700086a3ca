"""Greedy decoding of many tokens in one C call (`NativeLayers.greedy`): the tokens, log-probabilities
and finish reasons of the step-by-step loop, and a step at a time wherever a token must be seen at once."""

import math

import pytest
import torch

from glassformer.generate import Stopping, generate_lm
from glassformer.speed import native
from glassformer.speed.native_layers import MAX_ROWS, NativeLayers
from tests.speed.test_speed_native_layers import CONFIGS as LAYER_CONFIGS
from tests.speed.test_speed_native_layers import PROMPTS, c_and_flat

pytestmark = pytest.mark.skipif(not native.available(), reason=f"native kernels: {native.why_unavailable()}")

NAMES = ("gpt2 pre-norm, tied", "post-norm, sinusoidal, untied, relu", "llama: rmsnorm, rotary, gqa, swiglu")
CONFIGS = {name: LAYER_CONFIGS[name] for name in NAMES}


@pytest.fixture
def greedy_calls(monkeypatch):
    """(steps asked for, steps run) of every NativeLayers.greedy call; steps run 0 where it fell back."""
    calls = []
    original = NativeLayers.greedy

    def counted(self, *args):
        out = original(self, *args)
        calls.append((args[5], 0 if out is None else out[0].size(1)))
        return out

    monkeypatch.setattr(NativeLayers, "greedy", counted)
    return calls


def _same(got, want):
    assert [g.tokens for g in got] == [w.tokens for w in want]
    assert [g.finish_reason for g in got] == [w.finish_reason for w in want]
    assert [g.log_prob for g in got] == pytest.approx([w.log_prob for w in want], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("weights", ["fp32", "bf16"])
def test_many_steps_in_one_call_give_the_step_by_step_tokens(name, weights, fixed_choice, greedy_calls):
    fixed_choice(False, "bfloat16" if weights == "bf16" else "float32")
    c_layers, flat = c_and_flat(*CONFIGS[name], weights=weights)
    stopping = Stopping(max_new_tokens=12)
    for prompts in (PROMPTS, PROMPTS[:1]):  # a padded batch (a mask), and one row
        _same(generate_lm(c_layers, prompts, stopping=stopping), generate_lm(flat, prompts, stopping=stopping))
    # The first token comes from the prompt's logits; the other 11 from one call.
    assert greedy_calls == [(11, 11), (11, 11)]


def test_rows_stop_on_their_own_end_and_stop_tokens_and_the_call_ends_when_all_have(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    free = generate_lm(flat, PROMPTS, stopping=Stopping(max_new_tokens=20))
    end_id, stop_id = free[0].tokens[5], free[1].tokens[8]
    stopping = Stopping(end_id=end_id, stop_ids=(stop_id,), max_new_tokens=20)
    got, want = (generate_lm(m, PROMPTS, stopping=stopping) for m in (c_layers, flat))
    _same(got, want)
    assert {g.finish_reason for g in got} <= {"end", "stop_token"} and max(len(g.tokens) for g in got) < 20
    assert greedy_calls == [(19, max(len(g.tokens) for g in got) - 1)]


def test_rows_of_different_room_stop_at_their_own_length_and_positions_stay_in_the_table(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])  # 64 positions
    prompts = [list(range(1, 39)) + list(range(1, 23)), [9, 10]]  # 60 tokens: room for 4; 2 tokens: 62
    got, want = (generate_lm(m, prompts) for m in (c_layers, flat))
    _same(got, want)
    assert [len(g.tokens) for g in got] == [4, 62] and got[0].finish_reason == "max_length"
    assert greedy_calls == [(61, 61)]


def test_streaming_and_stop_strings_take_one_step_a_call(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["llama: rmsnorm, rotary, gqa, swiglu"])
    streamed = []
    got = generate_lm(c_layers, PROMPTS, stopping=Stopping(max_new_tokens=6),
                      on_token=lambda row, token: streamed.append((row, token)))
    _same(got, generate_lm(flat, PROMPTS, stopping=Stopping(max_new_tokens=6)))
    assert streamed == [(row, t) for step in zip(*(g.tokens for g in got)) for row, t in enumerate(step)]
    assert greedy_calls == [(1, 1)] * 5
    greedy_calls.clear()
    text = " ".join
    tokens = generate_lm(flat, PROMPTS[:1], stopping=Stopping(max_new_tokens=10))[0].tokens
    stopping = Stopping(max_new_tokens=10, stop_strings=(f"{tokens[3]}",), decode=lambda ids: text(map(str, ids)))
    got, want = (generate_lm(m, PROMPTS[:1], stopping=stopping) for m in (c_layers, flat))
    _same(got, want)
    assert got[0].finish_reason == "stop_string" and greedy_calls == [(1, 1)] * (len(got[0].tokens) - 1)


def test_equal_logits_give_the_first_token_as_argmax_does(greedy_calls):
    c_layers, _ = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    with torch.no_grad():
        c_layers.embed.token.weight.zero_()  # tied: every logit 0
    [got] = generate_lm(c_layers, [[5, 6]], stopping=Stopping(max_new_tokens=8))
    assert got.tokens == [0] * 8 and greedy_calls == [(7, 7)]
    assert got.log_prob == pytest.approx(-8 * math.log(40), rel=1e-6)


def test_a_hooked_model_decodes_a_step_at_a_time_through_its_modules(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    seen = []
    handle = c_layers.decoder.layers[0].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    try:
        got = generate_lm(c_layers, PROMPTS[:1], stopping=Stopping(max_new_tokens=5))
    finally:
        handle.remove()
    _same(got, generate_lm(flat, PROMPTS[:1], stopping=Stopping(max_new_tokens=5)))
    assert len(seen) == 5 and greedy_calls == []  # the prompt, then 4 steps; the C loop never asked


def test_a_nan_logit_is_chosen_as_argmax_chooses_it(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    for model in (c_layers, flat):
        with torch.no_grad():
            model.embed.token.weight[7] = float("nan")  # tied: logit 7 NaN, then every logit once 7 is fed
    got, want = (generate_lm(m, [[5, 6]], stopping=Stopping(max_new_tokens=4))[0] for m in (c_layers, flat))
    assert got.tokens == want.tokens == [7, 0, 0, 0] and math.isnan(got.log_prob) and greedy_calls == [(3, 3)]


def test_an_activation_reassigned_after_the_transform_sends_greedy_decoding_to_the_flat_steps(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    for model in (c_layers, flat):
        model.decoder.layers[1].ffn.activation = torch.relu  # an ablation by assignment
    stopping = Stopping(max_new_tokens=6)
    _same(generate_lm(c_layers, PROMPTS, stopping=stopping), generate_lm(flat, PROMPTS, stopping=stopping))
    assert greedy_calls == [(5, 0)]  # asked once, declined: a step at a time from there


def test_more_rows_than_the_c_code_takes_decode_a_step_at_a_time(greedy_calls):
    c_layers, flat = c_and_flat(*CONFIGS["gpt2 pre-norm, tied"])
    prompts = [[1 + i % 30, 2 + i % 29] for i in range(MAX_ROWS + 1)]
    stopping = Stopping(max_new_tokens=5)
    _same(generate_lm(c_layers, prompts, stopping=stopping), generate_lm(flat, prompts, stopping=stopping))
    assert greedy_calls == [(4, 0)]
