"""Decoding for looking inside: `glassformer.generate`'s own loop, uncached, with its logits kept.

Without a cache every step runs the decoder on the whole prefix so far, so a Recording holds,
per step, every activation of that step (the masked self-attention grows by one row and column
each step). The steps are read back from the Generation: what each step saw, its logits and
the token it chose. There is no second decoding loop here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glassformer.generate import Sampling, Stopping, generate_lm, generate_seq2seq
from glassformer.inspect.recorder import Recording


@dataclass
class DecodeStep:
    """One decoding step.

    Args:
        prefix: the ids fed to the decoder at this step (for decoder-only: prompt and all chosen so far).
        logits: the last position's logits [V].
        chosen: the id the step chose.
    """

    prefix: list[int]
    logits: torch.Tensor
    chosen: int


@torch.no_grad()
def decode_steps(
    model: nn.Module,
    ids: torch.Tensor,
    start_id: int,
    end_id: int,
    max_steps: int,
    recording: Recording | None = None,
    sampling: Sampling = Sampling(),
) -> list[DecodeStep]:
    """Decode one input with glassformer.generate (no cache, logits kept), step by step.

    Args:
        model: an EncoderDecoder (ids is the source) or a DecoderOnly (ids is the prompt).
        ids: [1, L] source or prompt ids.
        start_id: the decoder's first input (encoder-decoder only).
        end_id: the id that ends decoding.
        max_steps: the most tokens to choose (also capped by the model's max_len).
        recording: the Recording of an enclosing `record` block, so each step gets its own index.
        sampling: how each token is chosen (default greedy).
    Returns:
        the steps in order; the last one chose end_id unless a limit stopped it first.
    """
    family = model.config.family
    if family == "encoder-only":
        raise ValueError("an encoder-only model does not decode")
    # Each chosen token is fed back in a new forward pass: a new step of the recording
    # (step 0 shares its index with the encoder run).
    on_token = (lambda row, token: recording.new_step()) if recording is not None else None
    stopping = Stopping(end_id=end_id, max_new_tokens=max_steps)
    source = [int(i) for i in ids[0]]
    if family == "encoder-decoder":
        [generation] = generate_seq2seq(model, [source], start_id, sampling, stopping, use_cache=False,
                                        on_token=on_token, keep_logits=True)
        prefix = [start_id]
    else:
        [generation] = generate_lm(model, [source], sampling, stopping, use_cache=False,
                                   on_token=on_token, keep_logits=True)
        prefix = source
    steps = []
    for k, token in enumerate(generation.tokens):
        steps.append(DecodeStep(prefix + generation.tokens[:k], generation.logits[k].clone(), int(token)))
    return steps
