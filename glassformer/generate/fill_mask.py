"""Fill-mask with an encoder-only model's masked-LM head: the likeliest tokens at each mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.loop import model_device
from glassformer.generate.padding import right_pad
from glassformer.generate.results import MaskFill


@torch.inference_mode()
def fill_mask(
    model: nn.Module, sequences: Sequence[Sequence[int]], mask_id: int, top_k: int = 5
) -> list[list[MaskFill]]:
    """The top_k tokens and their probabilities at every mask_id of each sequence.

    Args:
        model: an encoder-only model whose head is "mlm" (it returns logits [B, T, V]).
        sequences: B id lists, special tokens included (see `glassformer.framing.sequence_ids`).
        mask_id: the id that marks a position to fill.
        top_k: how many candidates per mask (at most the vocabulary size).
    Returns:
        per sequence, one MaskFill per mask position, in order.
    """
    if top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")
    if getattr(model.config, "head", None) != "mlm":
        raise UserError(f"fill-mask needs a masked-LM head, the model has head {model.config.head!r}")
    max_len = model.config.max_len
    for sequence in sequences:
        if mask_id not in sequence:
            raise UserError("the text has no <mask> to fill")
        if len(sequence) > max_len:
            raise UserError(f"text of {len(sequence)} tokens is longer than the model's maximum of {max_len}")
    if not sequences:
        return []
    ids, valid = right_pad(sequences, model.config.pad_id, model_device(model))
    logits = model(ids, mask=valid[:, None, None, :])  # [B, T, V]
    results = []
    for row, sequence in enumerate(sequences):
        positions = [i for i, token in enumerate(sequence) if token == mask_id]
        probs = torch.softmax(logits[row, positions].float(), dim=-1)  # [M, V]
        top = probs.topk(min(top_k, probs.size(-1)), dim=-1)
        results.append([
            MaskFill(position, tokens, values)
            for position, tokens, values in zip(positions, top.indices.tolist(), top.values.tolist())
        ])
    return results
