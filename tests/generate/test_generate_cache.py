"""KV-cache decoding equals full recomputation, and batched decoding equals decoding alone."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.generate import Stopping, generate_lm, generate_seq2seq
from glassformer.generate.padding import left_pad, positions_from_valid
from glassformer.models import build_model

STEPS = 60
# Different lengths, so that a batch needs padding (left for prompts, right for sources).
INPUTS = [[1, 5, 6, 7, 8, 9], [1, 10], [1, 11, 12, 13]]
LONG = Stopping(max_new_tokens=STEPS)  # no end token: every row runs all STEPS


def _assert_same(a, b, atol=1e-5):
    """Identical tokens, logits within atol at every step, and no near-tie that could hide a bug."""
    assert a.tokens == b.tokens
    assert len(a.tokens) == STEPS
    assert a.logits.shape == b.logits.shape
    assert torch.allclose(a.logits, b.logits, atol=atol, rtol=0)
    top2 = a.logits.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 100 * atol
    assert len(set(a.tokens)) > 1


def test_decoder_only_cached_equals_uncached_with_padding(lm):
    cached = generate_lm(lm, INPUTS, stopping=LONG, keep_logits=True)
    full = generate_lm(lm, INPUTS, stopping=LONG, keep_logits=True, use_cache=False)
    for a, b in zip(cached, full):
        _assert_same(a, b)
        assert a.finish_reason == "max_new_tokens"


def test_encoder_decoder_cached_equals_uncached_with_padding(seq2seq):
    cached = generate_seq2seq(seq2seq, INPUTS, start_id=1, stopping=LONG, keep_logits=True)
    full = generate_seq2seq(seq2seq, INPUTS, start_id=1, stopping=LONG, keep_logits=True, use_cache=False)
    for a, b in zip(cached, full):
        _assert_same(a, b)


def test_decoder_only_batch_equals_each_prompt_alone(lm):
    batch = generate_lm(lm, INPUTS, stopping=LONG, keep_logits=True)
    for prompt, together in zip(INPUTS, batch):
        [alone] = generate_lm(lm, [prompt], stopping=LONG, keep_logits=True)
        _assert_same(together, alone)
        assert together.log_prob == pytest.approx(alone.log_prob, abs=1e-4)


def test_learned_positions_count_from_each_rows_first_token():
    # GPT-2 style: learned positions, no embedding scale; a wrong position id would show here.
    torch.manual_seed(1)
    config = get_preset("tiny-lm").replace(
        vocab_size=40, tie_output=False, max_len=128, positions="learned", scale_embeddings=False, activation="relu"
    )
    model = build_model(config).eval()
    batch = generate_lm(model, INPUTS, stopping=LONG, keep_logits=True)
    full = generate_lm(model, INPUTS, stopping=LONG, keep_logits=True, use_cache=False)
    for prompt, together, recomputed in zip(INPUTS, batch, full):
        [alone] = generate_lm(model, [prompt], stopping=LONG, keep_logits=True)
        _assert_same(together, alone)
        _assert_same(together, recomputed)


def test_encoder_decoder_batch_equals_each_source_alone(seq2seq):
    batch = generate_seq2seq(seq2seq, INPUTS, start_id=1, stopping=LONG, keep_logits=True)
    for source, together in zip(INPUTS, batch):
        [alone] = generate_seq2seq(seq2seq, [source], start_id=1, stopping=LONG, keep_logits=True)
        _assert_same(together, alone)


def test_left_padding_positions_count_from_the_first_real_token():
    ids, valid = left_pad([[7, 8, 9], [5]], pad_id=0)
    assert ids.tolist() == [[7, 8, 9], [0, 0, 5]]
    assert positions_from_valid(valid).tolist() == [[0, 1, 2], [0, 0, 0]]


def test_log_prob_is_the_sum_of_the_chosen_tokens_log_probabilities(lm):
    [g] = generate_lm(lm, [INPUTS[0]], stopping=Stopping(max_new_tokens=5), keep_logits=True)
    expected = torch.log_softmax(g.logits, dim=-1).gather(-1, torch.tensor(g.tokens)[:, None]).sum()
    assert g.log_prob == pytest.approx(expected.item(), abs=1e-5)


def test_prompt_filling_the_model_is_a_clear_error(lm):
    with pytest.raises(UserError, match="prompt of 128 tokens reaches the model's maximum of 128"):
        generate_lm(lm, [[1] * 128])


def test_generation_stops_at_the_models_last_position(lm):
    # 120 + 8 = 128 positions: the shorter prompt may grow further than the longer one.
    out = generate_lm(lm, [[1] * 120, [1] * 100], stopping=Stopping(max_new_tokens=20))
    assert [len(g.tokens) for g in out] == [8, 20]
    assert [g.finish_reason for g in out] == ["max_length", "max_new_tokens"]
