"""The logit lens: what the model would predict if it stopped after each layer.

The residual stream after the embeddings and after each layer is read out the way the last
layer's output is: through the stack's final LayerNorm where the model has one (pre-norm) and
the output projection (an LM's or seq2seq decoder's `lm_head`, an encoder's masked-LM head).
The last reading is the model's own logits.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.errors import UserError


def _stack_and_readout(model: nn.Module):
    """The stack whose residual stream is read, and the function from its hidden states to logits."""
    family = model.config.family
    if family != "encoder-only" and model.config.head != "none":
        raise UserError("the logit lens needs an output over the vocabulary: this model's head is a "
                        f"{model.config.head!r} classifier, not an LM head")
    if family == "encoder-only":
        if model.config.head != "mlm":
            raise UserError("the logit lens needs an output over the vocabulary: an LM, a seq2seq model or an "
                            f"encoder with a masked-LM head (this encoder's head is {model.config.head!r})")
        stack = model.encoder
        return stack, lambda h: model.head(h if stack.final_norm is None else stack.final_norm(h))
    stack = model.decoder
    head = model.lm_head  # its scale: T5 v1.0 multiplies the decoder output by d_model**-0.5
    return stack, lambda h: head.proj(head.scale * (h if stack.final_norm is None else stack.final_norm(h)))


@torch.no_grad()
def logit_lens(model: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """Logits read from the residual stream before the first layer and after every layer.

    Args:
        inputs: what model(*inputs) takes: ids [B, T], or source [B, S] and target [B, T].
    Returns:
        [n_layers + 1, B, T, V]; entry 0 reads the embeddings, the last equals the model's logits.
    """
    stack, readout = _stack_and_readout(model)
    stream: list[torch.Tensor] = []
    handles = [stack.layers[0].register_forward_pre_hook(lambda module, args: stream.append(args[0]))]
    handles += [layer.register_forward_hook(lambda module, args, out: stream.append(out)) for layer in stack.layers]
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([readout(hidden) for hidden in stream])
