"""Induction-head scores, read on attention set by hand.

Not here (see the issue-15 report): training a two-layer attention-only model until it forms an
induction head. Within 2,000 steps (8 minutes on the busy test machine) it learned the task
(second-copy loss 0.26) with first-layer heads instead, and prefix-matching and ablation did not
single out one head, so no claim about it is tested.
"""

import torch

from glassformer.inspect.induction import previous_token_score, prefix_matching_score, repeat_loss, repeated_tokens
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
