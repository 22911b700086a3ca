"""Logit filters on constructed distributions, and seeded sampling."""

import pytest
import torch

from glassformer.errors import UserError
from glassformer.generate import (
    Sampling,
    Stopping,
    generate_lm,
    logits_to_probs,
    min_p_filter,
    no_repeat_ngram_filter,
    repetition_penalty,
    sample,
    top_k_filter,
    top_p_filter,
)
from glassformer.generate.logits import banned_ngram_tokens

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])


def _kept(logits):
    return torch.isfinite(logits)[0].tolist()


@pytest.mark.parametrize(
    "p, kept",
    [(0.5, 1), (0.8, 2), (0.81, 3), (0.95, 3), (0.951, 4), (1.0, 4), (0.1, 1)],
)
def test_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    filtered = top_p_filter(PROBS.log(), p)
    assert _kept(filtered) == [True] * kept + [False] * (4 - kept)


def test_top_p_works_on_unsorted_rows_independently():
    logits = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]]).log()
    kept = torch.isfinite(top_p_filter(logits, 0.8))
    assert kept.tolist() == [[False, True, False, True], [True, True, True, True]]


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert _kept(top_k_filter(logits, 2)) == [False, True, True, False]
    assert _kept(top_k_filter(logits, 10)) == [True] * 4


def test_min_p_keeps_tokens_at_least_min_p_of_the_top():
    # 0.3 / 0.5 = 0.6, 0.15 / 0.5 = 0.3, 0.05 / 0.5 = 0.1
    assert _kept(min_p_filter(PROBS.log(), 0.3)) == [True, True, True, False]
    assert _kept(min_p_filter(PROBS.log(), 0.31)) == [True, True, False, False]
    assert _kept(min_p_filter(PROBS.log(), 0.0)) == [True] * 4


def test_filtered_probabilities_are_renormalised():
    probs = logits_to_probs(PROBS.log(), top_p=0.8)
    assert torch.allclose(probs, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # Temperature 2 on log-probs is the square root of the distribution, renormalised.
    flat = logits_to_probs(PROBS.log(), temperature=2.0)
    root = PROBS.sqrt()
    assert torch.allclose(flat, root / root.sum())


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -1.0, 3.0, -2.0, 0.5]])
    previous = torch.tensor([[0, 1, 4, 0]])
    valid = torch.tensor([[True, True, False, True]])  # token 4 is padding: not seen
    out = repetition_penalty(logits, previous, 2.0, valid)
    assert out.tolist() == [[1.0, -2.0, 3.0, -2.0, 0.5]]
    assert torch.equal(repetition_penalty(logits, previous, 1.0), logits)


def test_no_repeat_ngram_bans_tokens_completing_a_seen_ngram():
    sequence = [7, 8, 9, 7, 8]
    assert banned_ngram_tokens(sequence, 3) == {9}  # "7 8" was followed by 9
    assert banned_ngram_tokens(sequence, 2) == {9}  # "8" was followed by 9
    assert banned_ngram_tokens(sequence, 1) == {7, 8, 9}
    assert banned_ngram_tokens([7, 8], 3) == set()
    out = no_repeat_ngram_filter(torch.zeros(2, 10), [sequence, [1, 2]], 3)
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [9]
    assert torch.isfinite(out[1]).all()


def test_no_repeat_ngram_generation_has_no_repeated_ngram(lm):
    [g] = generate_lm(lm, [[1, 5]], Sampling(no_repeat_ngram=2), Stopping(max_new_tokens=30))
    sequence = [1, 5] + g.tokens
    bigrams = list(zip(sequence, sequence[1:]))
    assert len(bigrams) == len(set(bigrams))


def test_sample_draws_by_probability_with_a_seeded_generator():
    probs = torch.tensor([[0.0, 0.25, 0.75]]).expand(4000, 3)
    drawn = sample(probs, torch.Generator().manual_seed(1))
    assert (drawn == 0).sum() == 0
    assert (drawn == 2).float().mean().item() == pytest.approx(0.75, abs=0.03)
    again = sample(probs, torch.Generator().manual_seed(1))
    assert torch.equal(drawn, again)


def test_seeded_sampling_is_reproducible(lm):
    sampling = Sampling(greedy=False, temperature=1.5, seed=7)
    stopping = Stopping(max_new_tokens=20)
    first = generate_lm(lm, [[1, 5, 6], [1, 7]], sampling, stopping)
    second = generate_lm(lm, [[1, 5, 6], [1, 7]], sampling, stopping)
    other = generate_lm(lm, [[1, 5, 6], [1, 7]], Sampling(greedy=False, temperature=1.5, seed=8), stopping)
    assert [g.tokens for g in first] == [g.tokens for g in second]
    assert [g.tokens for g in first] != [g.tokens for g in other]


def test_top_k_of_one_equals_greedy(lm):
    stopping = Stopping(max_new_tokens=20)
    greedy = generate_lm(lm, [[1, 5, 6]], Sampling(), stopping)
    top1 = generate_lm(lm, [[1, 5, 6]], Sampling(greedy=False, top_k=1, seed=3), stopping)
    assert top1[0].tokens == greedy[0].tokens
    assert top1[0].log_prob == pytest.approx(greedy[0].log_prob)


def test_repetition_penalty_changes_greedy_output_away_from_repeats(lm):
    stopping = Stopping(max_new_tokens=30)
    plain = generate_lm(lm, [[1, 5]], Sampling(), stopping)[0].tokens
    penalised = generate_lm(lm, [[1, 5]], Sampling(repetition_penalty=100.0), stopping)[0].tokens
    assert len(set(penalised)) > len(set(plain))


@pytest.mark.parametrize(
    "settings", [dict(temperature=0.0), dict(top_k=0), dict(top_p=1.5), dict(min_p=-0.1), dict(no_repeat_ngram=-1)]
)
def test_bad_sampling_settings_are_user_errors(settings):
    with pytest.raises(UserError):
        Sampling(greedy=False, **settings)

