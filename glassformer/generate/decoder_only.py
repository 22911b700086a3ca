"""Generation with a decoder-only model: prefill the prompts in one pass, then one token at a time.

A batch of prompts of different lengths is padded on the LEFT, so that every row's next token
lands in the same column. The key-padding mask then covers every key written so far, and
position ids count from each row's first real token, so a padded row computes what it would
alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.loop import OnToken, decode_loop, model_device
from glassformer.generate.padding import left_pad, positions_from_valid
from glassformer.generate.results import Generation
from glassformer.generate.sampling import Sampling
from glassformer.generate.stopping import Stopping, check_prompt_length, room
from glassformer.nn.kv_cache import DecoderCache


def prefill(
    model: nn.Module, ids: torch.Tensor, valid: torch.Tensor, cache: DecoderCache | None = None,
    padded: bool = True,
) -> torch.Tensor:
    """Run the whole (left-padded) prompt through the model, filling the cache.

    Args:
        ids: prompts [B, L]; valid: [B, L], True at real tokens.
        padded: whether valid has any False; without padding no mask is passed (less work).
    Returns:
        logits [B, V] for the token after each prompt.
    """
    mask = valid[:, None, None, :] if padded else None  # [B, 1, 1, L]
    # Only rows that already stopped can pass the last position (see _DecoderOnlyStepper.step).
    positions = positions_from_valid(valid).clamp(max=model.config.max_len - 1)
    return model(ids, mask=mask, positions=positions, cache=cache, cache_pos=0, last_only=True)[:, -1]


def decode_one_token(
    model: nn.Module,
    token: torch.Tensor,
    valid: torch.Tensor,
    position: torch.Tensor,
    cache: DecoderCache,
    cache_pos: int,
    padded: bool = True,
) -> torch.Tensor:
    """Feed one token per row at column cache_pos, reading the earlier keys from the cache.

    Args:
        token: [B, 1] ids; position: [B, 1] their position ids.
        valid: [B, cache_pos + 1], True at every real key so far (this token included).
        padded: as `prefill`.
    Returns:
        logits [B, V] for the token after it.
    """
    mask = valid[:, None, None, :] if padded else None  # [B, 1, 1, cache_pos + 1]
    return model(token, mask=mask, positions=position, cache=cache, cache_pos=cache_pos)[:, -1]


class _DecoderOnlyStepper:
    """Holds the growing ids, mask and cache of one batch."""

    def __init__(self, model: nn.Module, ids: torch.Tensor, valid: torch.Tensor, capacity: int, use_cache: bool):
        self.model = model
        self.ids, self.valid = ids, valid
        # Every key fed later is real, so only left padding of the prompts ever needs a mask.
        self.padded = not bool(valid.all())
        self.next_position = valid.long().sum(dim=-1, keepdim=True)  # [B, 1]
        self.length = ids.size(1)  # columns fed so far
        self.cache = model.new_cache(capacity) if use_cache else None

    def prefill(self) -> torch.Tensor:
        return prefill(self.model, self.ids, self.valid, self.cache, self.padded)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        cache_pos = self.length
        self.length += 1
        if self.cache is None:  # the whole prefix is fed again
            self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        if self.padded or self.cache is None:  # without padding, no step needs the mask
            self.valid = torch.cat([self.valid, torch.ones_like(self.valid[:, :1])], dim=1)
        # Rows that stopped early keep being fed (their outputs are ignored); the clamp keeps
        # their positions inside the table once they pass the model's maximum.
        position = self.next_position.clamp(max=self.model.config.max_len - 1)
        self.next_position = self.next_position + 1
        if self.cache is None:
            # Without a cache the whole prefix is recomputed: same logits, quadratic cost.
            return prefill(self.model, self.ids, self.valid, padded=self.padded)
        return decode_one_token(
            self.model, tokens[:, None], self.valid, position, self.cache, cache_pos, self.padded
        )

    def greedy_steps(
        self, tokens: torch.Tensor, limits: list[int], stop_ids: list[int], n: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Feed tokens [B] and up to n - 1 greedy choices after them in one call, where the model's
        forward offers it (`glassformer.speed.decode_step.FlatDecode.greedy_steps`, installed by
        `optimize_for_inference`); see `GreedySteps`. None where it does not (nothing was fed)."""
        run = getattr(self.model.forward, "greedy_steps", None)
        if run is None or self.cache is None:
            return None
        ones = torch.ones_like(self.valid[:, :1])
        mask = torch.cat([self.valid, ones], dim=1)[:, None, None, :] if self.padded else None
        position = self.next_position.clamp(max=self.model.config.max_len - 1)
        out = run(tokens[:, None], mask, position, self.cache, self.length, n, limits, stop_ids,
                  self.model.config.max_len - 1)
        if out is None:
            return None
        fed = out[0].size(1)
        self.length += fed
        self.next_position = self.next_position + fed
        if self.padded:
            self.valid = torch.cat([self.valid, ones.expand(-1, fed)], dim=1)
        return out


@torch.inference_mode()
def generate_lm(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    sampling: Sampling = Sampling(),
    stopping: Stopping = Stopping(),
    use_cache: bool = True,
    on_token: OnToken | None = None,
    keep_logits: bool = False,
) -> list[Generation]:
    """Continue each prompt with a decoder-only model (in eval mode).

    Args:
        prompts: B id lists, special tokens included (see `glassformer.framing.sequence_ids`).
        sampling: greedy (default) or sampled choice of each token.
        stopping: end token, stop tokens/strings and length limit.
        use_cache: keep keys and values between steps; False recomputes the whole prefix.
        on_token: streaming callback on_token(batch_index, token_id).
        keep_logits: also return each step's raw logits.
    """
    if not prompts:
        return []
    max_len = model.config.max_len
    for prompt in prompts:
        if not prompt:
            raise UserError("empty prompt: a decoder-only model needs at least one token to continue")
        check_prompt_length(len(prompt), max_len)
    ids, valid = left_pad(prompts, model.config.pad_id, model_device(model))
    max_new = [room(len(p), max_len, stopping) for p in prompts]
    stepper = _DecoderOnlyStepper(model, ids, valid, ids.size(1) + max(max_new), use_cache)
    return decode_loop(
        stepper, max_new, sampling, stopping, model.config.pad_id, ids, valid, on_token, keep_logits
    )
