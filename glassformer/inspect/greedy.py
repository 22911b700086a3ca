"""A small greedy decoding loop for looking inside: uncached, one full forward per step.

Each step runs the decoder on the whole prefix so far, so a Recording holds, per step, every
activation of that step (the masked self-attention grows by one row and column each step).
`glassformer.generate` is the place for fast decoding; this loop is for seeing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glassformer.inspect.recorder import Recording
from glassformer.nn.masks import padding_mask


@dataclass
class DecodeStep:
    """One greedy step.

    Args:
        prefix: the ids fed to the decoder at this step (for decoder-only: prompt and all chosen so far).
        logits: the last position's logits [V].
        chosen: the id with the highest logit.
    """

    prefix: list[int]
    logits: torch.Tensor
    chosen: int


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    ids: torch.Tensor,
    start_id: int,
    end_id: int,
    max_steps: int,
    recording: Recording | None = None,
) -> list[DecodeStep]:
    """Pick the most probable next token until end_id or max_steps, one uncached forward per step.

    Args:
        model: an EncoderDecoder (ids is the source) or a DecoderOnly (ids is the prompt).
        ids: [1, L] source or prompt ids.
        start_id: the decoder's first input (encoder-decoder only).
        end_id: the id that ends decoding.
        max_steps: the most tokens to choose (also capped by the model's max_len).
        recording: the Recording of an enclosing `record` block, so each step gets its own index.
    Returns:
        the steps in order; the last one chose end_id unless a limit stopped it first.
    """
    max_len = model.config.max_len
    encoder_decoder = model.config.family == "encoder-decoder"
    if model.config.family == "encoder-only":
        raise ValueError("an encoder-only model does not decode")
    if encoder_decoder:
        src_mask = padding_mask(ids, model.config.pad_id)
        memory = model.encode(ids, src_mask)
        prefix = [start_id]
    else:
        prefix = [int(i) for i in ids[0]]
    steps: list[DecodeStep] = []
    while len(steps) < max_steps and len(prefix) <= max_len:
        if recording is not None and steps:
            recording.new_step()  # step 0 shares its index with the encoder run
        tgt = torch.tensor([prefix], dtype=torch.long, device=ids.device)
        logits = model.decode(tgt, memory, src_mask) if encoder_decoder else model(tgt)
        last = logits[0, -1].float()
        chosen = int(last.argmax())
        steps.append(DecodeStep(list(prefix), last.clone(), chosen))
        if chosen == end_id:
            break
        prefix.append(chosen)
    return steps
