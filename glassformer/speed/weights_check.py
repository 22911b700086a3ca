"""What bf16 weights cost in quality: greedy agreement with the fp32 model and held-out perplexity.

`compare_models(reference, other, prompts, new_tokens, held_out)` runs two decoder-only models
with the same weights (fp32, and one prepared with `weights="bf16"`) on the same inputs and
counts:

- free-running agreement: each model continues each prompt greedily by itself; the share of
  positions where both wrote the same token. One flipped near-tie sends the two continuations
  apart, and everything after it counts as disagreement.
- teacher-forced agreement: both models read the reference's own greedy continuation, and at
  every position their most probable next tokens are compared: how often a single step agrees,
  without the cascade.
- held-out perplexity of each model, exp(mean negative log-likelihood of every next token).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.generate import Stopping, generate_lm


@dataclass(frozen=True)
class WeightsCheck:
    """Counts from `compare_models`; `other` is the model under test, `reference` the fp32 one.

    Args:
        tokens: generated positions compared (prompts x new tokens, as the reference wrote them).
        same_tokens: positions where both free-running continuations hold the same token.
        same_argmax: positions where, reading the reference's continuation, both predict the same token.
        perplexity: held-out perplexity of the reference; perplexity_other: of the other model.
        scored: held-out tokens the perplexities are over.
    """

    tokens: int
    same_tokens: int
    same_argmax: int
    perplexity: float
    perplexity_other: float
    scored: int

    @property
    def agreement(self) -> float:
        return self.same_tokens / self.tokens

    @property
    def argmax_agreement(self) -> float:
        return self.same_argmax / self.tokens

    @property
    def perplexity_change(self) -> float:
        """Relative change of the other model's perplexity, e.g. 0.001 for 0.1% higher."""
        return self.perplexity_other / self.perplexity - 1.0

    def summary(self) -> str:
        return (f"greedy agreement {self.agreement:.1%} of {self.tokens} tokens "
                f"(teacher-forced {self.argmax_agreement:.1%}), held-out perplexity {self.perplexity:.4f} -> "
                f"{self.perplexity_other:.4f} ({self.perplexity_change:+.2%}, {self.scored} tokens)")


@torch.inference_mode()
def perplexity(model: nn.Module, held_out: Sequence[Sequence[int]]) -> tuple[float, int]:
    """(exp of the mean next-token negative log-likelihood over every sequence, tokens scored).

    No sequences give (nan, 0).
    """
    total, count = 0.0, 0
    for sequence in held_out:
        ids = torch.tensor([list(sequence)], device=_device(model))  # [1, L]
        logits = model(ids)[0, :-1].float()  # [L - 1, V]
        total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += ids.size(1) - 1
    return (math.exp(total / count) if count else math.nan), count


@torch.inference_mode()
def compare_models(
    reference: nn.Module,
    other: nn.Module,
    prompts: Sequence[Sequence[int]],
    new_tokens: int,
    held_out: Sequence[Sequence[int]],
) -> WeightsCheck:
    """Greedy agreement of other with reference over prompts, and both models' held-out perplexity.

    Args:
        reference, other: decoder-only models over the same vocabulary, in eval mode.
        prompts: id lists to continue with new_tokens greedy tokens each (no end token stops them).
        held_out: id lists, at least 2 tokens each, to score (none: the perplexities are nan).
    """
    stopping = Stopping(max_new_tokens=new_tokens)
    ours = [g.tokens for g in generate_lm(reference, prompts, stopping=stopping)]
    theirs = [g.tokens for g in generate_lm(other, prompts, stopping=stopping)]
    tokens = sum(len(t) for t in ours)
    same_tokens = sum(a == b for x, y in zip(ours, theirs) for a, b in zip(x, y))
    same_argmax = 0
    for prompt, continuation in zip(prompts, ours):
        if not continuation:
            continue
        ids = torch.tensor([list(prompt) + continuation[:-1]], device=_device(reference))  # [1, P + N - 1]
        start = len(prompt) - 1  # the position whose next token is the first one generated
        a = reference(ids)[0, start:].argmax(dim=-1)
        b = other(ids)[0, start:].argmax(dim=-1)
        same_argmax += int((a == b).sum())
    ppl, scored = perplexity(reference, held_out)
    ppl_other, _ = perplexity(other, held_out)
    return WeightsCheck(tokens, same_tokens, same_argmax, ppl, ppl_other, scored)


def _device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
