"""Greedy or sampled generation with an encoder-decoder: encode once, then decode token by token.

Sources of different lengths are padded on the right and hidden by the source mask; every
target starts with the same decoder start token, so targets need no padding mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.loop import OnToken, decode_loop, model_device
from glassformer.generate.padding import right_pad
from glassformer.generate.results import Generation
from glassformer.generate.sampling import Sampling
from glassformer.generate.stopping import Stopping, room
from glassformer.nn.kv_cache import DecoderCache


def encode_sources(
    model: nn.Module, sources: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad and encode the sources.

    Returns:
        memory [B, S, d_model] and src_mask [B, 1, 1, S] (True at real tokens).
    """
    max_len = model.config.max_len
    for source in sources:
        if not source:
            raise UserError("empty source: an encoder needs at least one token")
        if len(source) > max_len:
            raise UserError(f"source of {len(source)} tokens is longer than the model's maximum of {max_len}")
    src, valid = right_pad(sources, model.config.pad_id, model_device(model))
    src_mask = valid[:, None, None, :]  # [B, 1, 1, S]
    return model.encode(src, src_mask), src_mask


def decode_step(
    model: nn.Module,
    tgt: torch.Tensor,
    memory: torch.Tensor,
    src_mask: torch.Tensor,
    cache: DecoderCache | None,
) -> torch.Tensor:
    """Logits [B, V] for the token after tgt [B, t].

    With a cache only the last column of tgt is fed (the earlier ones are in the cache; the
    first call also stores the encoder's keys and values); without one the whole prefix is.
    """
    if cache is None:
        return model.decode(tgt, memory, src_mask)[:, -1]
    cache_pos = tgt.size(1) - 1
    return model.decode(tgt[:, -1:], memory, src_mask, cache=cache, cache_pos=cache_pos)[:, -1]


class _EncoderDecoderStepper:
    """Holds the encoder output, the growing targets and the cache of one batch."""

    def __init__(self, model: nn.Module, memory, src_mask, start_id: int, capacity: int, use_cache: bool):
        self.model, self.memory, self.src_mask = model, memory, src_mask
        self.tgt = torch.full((memory.size(0), 1), start_id, dtype=torch.long, device=memory.device)
        self.cache = model.new_cache(capacity) if use_cache else None

    def prefill(self) -> torch.Tensor:
        return decode_step(self.model, self.tgt, self.memory, self.src_mask, self.cache)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tgt = torch.cat([self.tgt, tokens[:, None]], dim=1)
        return decode_step(self.model, self.tgt, self.memory, self.src_mask, self.cache)


@torch.inference_mode()
def generate_seq2seq(
    model: nn.Module,
    sources: Sequence[Sequence[int]],
    start_id: int,
    sampling: Sampling = Sampling(),
    stopping: Stopping = Stopping(),
    use_cache: bool = True,
    on_token: OnToken | None = None,
    keep_logits: bool = False,
    length_margin: int | None = None,
) -> list[Generation]:
    """Generate a target for each source with an encoder-decoder (in eval mode).

    Args:
        sources: B id lists (see `glassformer.framing.source_ids`).
        start_id: the decoder's first token (`glassformer.framing.decoder_start`).
        sampling, stopping, use_cache, on_token, keep_logits: as `generate_lm`.
        length_margin: each target holds at most len(source) + length_margin tokens (the
            paper used 50); None leaves only stopping.max_new_tokens and the model's maximum.
    """
    if not sources:
        return []
    memory, src_mask = encode_sources(model, sources)
    max_new = target_limits(model, sources, stopping, length_margin)
    stepper = _EncoderDecoderStepper(model, memory, src_mask, start_id, 1 + max(max_new), use_cache)
    return decode_loop(
        stepper, max_new, sampling, stopping, model.config.pad_id, on_token=on_token, keep_logits=keep_logits
    )


def target_limits(
    model: nn.Module, sources: Sequence[Sequence[int]], stopping: Stopping, length_margin: int | None
) -> list[int]:
    """Each source's longest target in tokens: the tightest of the margin, the request and the model."""
    # The start token holds position 0, so at most max_len - 1 tokens follow it.
    limit = room(1, model.config.max_len, stopping)
    if limit < 1:
        raise UserError(f"the model's maximum of {model.config.max_len} positions leaves no room to generate")
    if length_margin is None:
        return [limit] * len(sources)
    if length_margin < 1:
        raise UserError(f"length margin must be at least 1, got {length_margin}")
    return [min(limit, len(source) + length_margin) for source in sources]
