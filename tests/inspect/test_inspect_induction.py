"""Induction-head scores, read on attention set by hand, and the data that induction alone solves.

A trained two-layer attention-only model: tests/inspect/test_inspect_induction_trained.py (long).
"""

import pytest
import torch

from glassformer.inspect.induction import (
    in_context_accuracy,
    previous_token_score,
    prefix_matching_score,
    repeat_loss,
    repeated_segments,
    repeated_tokens,
)
from glassformer.inspect.intervene import intervene
from tests.tiny_models import tiny_model

N = 8


def test_repeated_tokens_repeat_after_a_start_token():
    ids = repeated_tokens(3, 5, 5, 20, 1, torch.Generator().manual_seed(0))
    assert ids.shape == (3, 11) and (ids[:, 0] == 1).all()
    assert torch.equal(ids[:, 1:6], ids[:, 6:]) and ids[:, 1:].min() >= 5 and ids[:, 1:].max() < 20


def test_scores_read_the_right_diagonals_of_attention():
    model = tiny_model("tiny-lm")
    ids = repeated_tokens(2, N, 5, 40, 1, torch.Generator().manual_seed(0))
    t = ids.size(1)
    induction = torch.zeros(t, t)
    previous = torch.zeros(t, t)
    for i in range(t):
        induction[i, i - N + 1 if i > N else i] = 1  # the token after the earlier occurrence
        previous[i, max(i - 1, 0)] = 1

    def set_heads(value, hook):
        value = value.clone()
        value[:, 1] = induction if hook.name.startswith("decoder.layers.1") else previous
        return value

    with intervene(model, {"decoder.layers.*.self_attn.hook_probs": set_heads}):
        prefix, prev = prefix_matching_score(model, ids, N), previous_token_score(model, ids)
    assert prefix.shape == prev.shape == (2, 4)
    assert prefix[1, 1] == 1 and prev[0, 1] == 1
    assert prefix[0, 1] == 0 and prev[1, 1] == 0
    assert prefix[:, [0, 2, 3]].max() < 0.5  # the untouched heads of a random model spread out


def test_repeat_loss_is_the_cross_entropy_of_the_second_copy():
    model = tiny_model("tiny-lm")
    ids = repeated_tokens(2, N, 5, 40, 1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids)
    by_hand = torch.nn.functional.cross_entropy(logits[0, N + 1:-1], ids[0, N + 2:])
    by_hand = (by_hand + torch.nn.functional.cross_entropy(logits[1, N + 1:-1], ids[1, N + 2:])) / 2
    assert abs(repeat_loss(model, ids, N) - float(by_hand)) < 1e-5


def test_repeated_segments_repeat_one_segment_at_a_random_distance():
    ids, predictable = repeated_segments(200, 40, 5, 100, 1, torch.Generator().manual_seed(0))
    assert ids.shape == predictable.shape == (200, 40) and (ids[:, 0] == 1).all()
    assert ids[:, 1:].min() >= 5 and ids[:, 1:].max() < 100
    distances = set()
    for row, wanted in zip(ids, predictable):
        where = wanted.nonzero().flatten()
        assert 3 <= len(where) <= 11 and torch.equal(where, torch.arange(int(where[0]), int(where[-1]) + 1))
        second = int(where[0]) - 1  # the second copy starts one before its first predictable token
        # Its first predictable token follows the same token earlier on, at a distance within the row.
        matches = [d for d in range(len(where) + 1, second + 1) if torch.equal(row[second - d:second - d + len(where) + 1],
                                                                             row[second:second + len(where) + 1])]
        assert matches
        distances.add(matches[0])
    assert len(distances) > 20  # no one distance back a first-layer head could learn


def test_repeated_segments_must_fit_twice():
    with pytest.raises(ValueError, match="segments of 4-12 tokens do not fit twice in 20"):
        repeated_segments(2, 20, 5, 100, 1, torch.Generator().manual_seed(0))


def test_in_context_accuracy_counts_only_the_predictable_tokens():
    ids, predictable = repeated_segments(8, 40, 5, 100, 1, torch.Generator().manual_seed(1))

    def knows_the_next_token(prefix):
        return torch.nn.functional.one_hot(ids[:, 1:prefix.size(1) + 1], 100).float()

    def always_token_7(prefix):
        logits = torch.zeros(*prefix.shape, 100)
        logits[..., 7] = 1
        return logits

    assert in_context_accuracy(knows_the_next_token, ids, predictable) == 1.0
    sevens = float((ids[:, 1:][predictable[:, 1:]] == 7).float().mean())
    assert in_context_accuracy(always_token_7, ids, predictable) == sevens


def test_shifted_scores_read_diagonals_further_on_and_further_back():
    model = tiny_model("tiny-lm")
    ids = repeated_tokens(2, N, 5, 40, 1, torch.Generator().manual_seed(0))
    t = ids.size(1)
    shifted, back = torch.zeros(t, t), torch.zeros(t, t)
    for i in range(t):
        shifted[i, i - N + 3 if i >= N + 3 else i] = 1  # two past the token after the earlier occurrence
        back[i, max(i - 3, 0)] = 1

    def set_heads(value, hook):
        value = value.clone()
        value[:, 0] = shifted if hook.name.startswith("decoder.layers.1") else back
        return value

    with intervene(model, {"decoder.layers.*.self_attn.hook_probs": set_heads}):
        assert prefix_matching_score(model, ids, N, shift=2)[1, 0] == 1
        assert prefix_matching_score(model, ids, N)[1, 0] == 0
        assert previous_token_score(model, ids, distance=3)[0, 0] == 1
        assert previous_token_score(model, ids)[0, 0] == 1 / 16  # only position 1, whose 3 back is clipped to 0
        with pytest.raises(ValueError, match="shift 7 must be in 0-6 for copies of 8 tokens"):
            prefix_matching_score(model, ids, N, shift=7)
