"""A two-layer attention-only model trained on repeated segments forms an induction circuit.

Marked `long` (3-4 minutes measured on the busy 2-core test machine, about 75 s estimated for an
idle core), so skipped by default; run it with
GLASSFORMER_LONG_TESTS=1 python3 -m pytest tests/inspect/test_inspect_induction_trained.py

What forms depends on the seed. In all three seeds tried the circuit has a layer-0 head looking s tokens back and
another looking s + 1 back, and layer-1 heads attending to the token after the earlier occurrence
plus s, where the layer-0 heads have put the pair (r, next token) side by side. With seed 2, this
test's, s = 0: the textbook induction head (a previous-token head in layer 0, prefix-matching in
layer 1). With seeds 0 and 1, s = 3 and 2, and the textbook score (s = 0) stays under 0.04 for
every head: it would miss those circuits. Measured on a 2-core AMD EPYC (AVX2), one thread:

    seed  s  layer-1 score at s  layer-0 s / s+1 back  intact  L0 heads zeroed  L1 heads zeroed  both L1
    0     3  0.84 0.77           0.84 / 0.84           0.92    0.01 0.07        0.87 0.92        0.02
    1     2  0.78 0.86           0.80 / 0.84           0.92    0.06 0.01        0.91 0.88        0.01
    2     0  0.94 0.88           0.97 / 0.74           0.97    0.01 0.07        0.86 0.97        0.01

(s = 0 back is the head attending to its own position; 1 back the previous-token head.) Under
ATEN_CPU_CAPABILITY=default seeds 2 and 0 form the same circuits within 0.01-0.04 of these figures
(seed 2: 0.94 0.88, 0.96 / 0.73, 0.98, 0.01 0.07, 0.87 0.97, 0.01), and seed 1 passes this test.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from glassformer.config import get_preset
from glassformer.inspect.ablate import ablate, head
from glassformer.inspect.induction import (
    in_context_accuracy,
    prefix_matching_score,
    previous_token_score,
    repeated_segments,
    repeated_tokens,
)
from glassformer.models import build_model

pytestmark = pytest.mark.long
VOCAB, LENGTH, N = 100, 40, 15


class NoFeedForward(nn.Module):
    """Stands in for a feed-forward network: the model becomes attention-only."""

    def forward(self, x):
        return torch.zeros_like(x)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(2)
    config = get_preset("tiny-lm").replace(vocab_size=VOCAB, d_model=64, n_heads=2, max_len=64, positions="rotary")
    model = build_model(config)
    for layer in model.decoder.layers:
        layer.ffn = NoFeedForward()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    data = torch.Generator().manual_seed(2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(1500):  # the loss falls from 3.7 to 0.4 between steps 600 and 800
        ids, predictable = repeated_segments(32, LENGTH, 5, VOCAB, 1, data)
        logits = model(ids[:, :-1])
        wanted = predictable[:, 1:]  # only the tokens the earlier occurrence predicts
        loss = F.cross_entropy(logits[wanted], ids[:, 1:][wanted])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


def test_an_induction_circuit_forms_and_prefix_matching_and_ablation_find_it(model):
    ids = repeated_tokens(64, N, 5, VOCAB, 1, torch.Generator().manual_seed(7))
    shifts = torch.stack([prefix_matching_score(model, ids, N, shift=s)[1] for s in range(N - 1)])  # [shift, H]
    s = int(shifts.max(dim=1).values.argmax())
    # Measured: both layer-1 heads 0.94 and 0.88 at s = 0: prefix-matching heads.
    assert shifts[s].min() > 0.5, shifts
    # Layer 0 has a head looking s back and another s + 1 back (measured 0.97 on itself and 0.74 on
    # the previous token); the layer-1 heads do neither (at most 0.30, seeds 0-2).
    back, back_one = previous_token_score(model, ids, distance=s), previous_token_score(model, ids, distance=s + 1)
    assert back[0].max() > 0.5 and back_one[0].max() > 0.5 and int(back[0].argmax()) != int(back_one[0].argmax())
    assert max(back[1].max(), back_one[1].max()) < 0.45

    test, predictable = repeated_segments(256, LENGTH, 5, VOCAB, 1, torch.Generator().manual_seed(100))
    intact = in_context_accuracy(model, test, predictable)
    assert intact > 0.8  # measured 0.97 (0.92 with seeds 0 and 1); chance is about 0.01
    without = {}
    for layer in range(2):
        for h in range(2):
            with ablate(model, head(f"decoder.layers.{layer}.self_attn", h)):
                without[(layer, h)] = in_context_accuracy(model, test, predictable)
    with ablate(model, head("decoder.layers.1.self_attn", 0)), ablate(model, head("decoder.layers.1.self_attn", 1)):
        without_layer_1 = in_context_accuracy(model, test, predictable)
    # Measured: either layer-0 head zeroed leaves 0.01 and 0.07; one layer-1 head 0.86 and 0.97:
    # the two layer-1 heads do the same job, and only both together take it away (0.01).
    assert max(without[(0, 0)], without[(0, 1)]) < 0.2, without
    assert min(without[(1, 0)], without[(1, 1)]) > intact - 0.15, without
    assert without_layer_1 < 0.2, without_layer_1
