"""Direct logit attribution: how much each part of the model writes, directly, into one token's logit.

In a pre-norm model (GPT-2, LLaMA, T5, the tiny and small presets) the decoder's residual stream
is a sum: the token embeddings, the positions where they are added (not rotary or relative ones:
those act inside attention's scores and write nothing to the stream), every head's output through
its slice of Wo, every feed-forward output, and the biases of Wo and of the feed-forward's last
matrix. The final norm is not linear, but with its scale frozen at the value this input gave it,
it is: a LayerNorm centres each part and multiplies it by gamma / sqrt(var + eps), and adds beta;
an RMSNorm (LLaMA, T5) only multiplies it by gamma / rms, with no centring and no bias. The output
projection's own factor (T5 v1.0 scales the decoder output by d_model**-0.5) is linear too. So
every part gets one number, its dot product with the token's row of the output projection, and
the numbers of the parts and of the bias terms (Wo, feed-forward, LayerNorm and output biases)
add up to the logit.

A post-norm model (the paper, BERT) has no single residual stream: every sublayer ends in a
norm that rescales all that came before. The same freezing still makes it linear, so the
same decomposition is computed, with each part carried through every norm after it (each
scaling it by gamma over its frozen scale, a LayerNorm also centring it) and each LayerNorm's beta
counted as a bias term. The sum is exact there too, but "direct" then means through every later
norm as this input scaled it: a part written early is multiplied by the scales of all later sublayers.

The decoder side is decomposed (a decoder-only LM, or an encoder-decoder's decoder, whose
cross-attention heads then carry what the encoder contributes). An encoder's masked-LM head
passes through an activation before its projection, and a classifier's head reads a pooled
or last token through its own layers, so their outputs are no sum of parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.inspect.recorder import record
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.rms_norm import RMSNorm


@dataclass
class Attribution:
    """Each part's direct contribution to one token's logit, at every position.

    Args:
        names: the parts, e.g. "embed.tokens", "decoder.layers.1.self_attn.head.2", "decoder.layers.1.ffn".
        contributions: [n_parts, B, T].
        bias_names: the bias terms, by parameter name, e.g. "decoder.final_norm.bias".
        biases: [n_biases, B, T].
        logit: [B, T] the model's own logit of the token.
    """

    names: list[str]
    contributions: torch.Tensor
    bias_names: list[str]
    biases: torch.Tensor
    logit: torch.Tensor

    def total(self) -> torch.Tensor:
        """The contributions plus the bias terms [B, T]: the logit, up to rounding."""
        return self.contributions.sum(0) + self.biases.sum(0)

    def top(self, position: int = -1, batch: int = 0, k: int = 10) -> list[tuple[str, float]]:
        """The k parts with the largest contributions by size at one position, largest first."""
        values = self.contributions[:, batch, position]
        order = values.abs().argsort(descending=True)[:k]
        return [(self.names[i], float(values[i])) for i in order]


class _Stream:
    """The residual stream as a list of parts [B, T, d_model] that sum to it."""

    def __init__(self):
        self.names: list[str] = []
        self.parts: list[torch.Tensor] = []
        self.is_bias: list[bool] = []

    def add(self, name: str, part: torch.Tensor, bias: bool = False) -> None:
        self.names.append(name)
        self.parts.append(part)
        self.is_bias.append(bias)

    def frozen_norm(self, norm: nn.Module, name: str) -> None:
        """Pass every part through norm (a LayerNorm or an RMSNorm) with the scale the whole stream gets."""
        stream = torch.stack(self.parts).sum(0)
        if isinstance(norm, RMSNorm):  # x / rms(x) * g: no centring, no bias
            scale = torch.rsqrt(stream.pow(2).mean(dim=-1, keepdim=True) + norm.eps)  # [B, T, 1]
            self.parts = [p * scale * norm.weight for p in self.parts]
            return
        scale = torch.rsqrt(stream.var(dim=-1, unbiased=False, keepdim=True) + norm.eps)  # [B, T, 1]
        weight = norm.weight if norm.weight is not None else 1.0
        self.parts = [(p - p.mean(dim=-1, keepdim=True)) * scale * weight for p in self.parts]
        if norm.bias is not None:
            self.add(f"{name}.bias", norm.bias.expand_as(stream), bias=True)


def _readout(model: nn.Module):
    """(the decoder's embeddings' name, the decoder, its output projection [an OutputProjection])."""
    family = model.config.family
    if family == "encoder-only" or getattr(model, "lm_head", None) is None:
        raise UserError("direct logit attribution needs a linear readout after the residual stream: an LM or a "
                        "seq2seq decoder (an encoder's masked-LM head passes through an activation first, "
                        f"a classifier's head through its own layers; this model's head is {model.config.head!r})")
    embed = "embed" if family == "decoder-only" else "tgt_embed"
    return embed, model.decoder, model.lm_head


def _ffn_last(ffn: nn.Module) -> str:
    """The name of the feed-forward network's last matrix: W2, or a gated network's W_down."""
    return "w_down" if isinstance(ffn, GatedFeedForward) else "w_2"


def _heads(context: torch.Tensor, w_o: nn.Linear) -> torch.Tensor:
    """Each head's output through its columns of Wo: context [B, H, T, D] -> [H, B, T, d_model]."""
    h, d = context.size(1), context.size(3)
    return torch.einsum("bhtd,mhd->hbtm", context, w_o.weight.view(-1, h, d))


@torch.no_grad()
def direct_logit_attribution(model: nn.Module, *inputs: torch.Tensor, token: int | torch.Tensor) -> Attribution:
    """Decompose the logit of `token` at every position into the parts that wrote it.

    Args:
        inputs: what model(*inputs) takes: ids [B, T], or source [B, S] and target [B, T].
        token: a token id, or ids [B, T] (one per position, e.g. the next token).
    """
    embed_name, stack, head = _readout(model)
    stack_name = "decoder"
    if model.training:
        raise UserError("direct logit attribution needs the model in eval mode (dropout off): call model.eval()")
    with record(model, names=[f"{embed_name}.hook_*", f"{stack_name}.layers.*.hook_context",
                              f"{stack_name}.layers.*.ffn.hook_out"], values=True, step_by_step=False) as rec:
        logits = model(*inputs)
    value = lambda name: rec.value(name, step=0)  # noqa: E731
    embed = model.get_submodule(embed_name)
    stream = _Stream()
    tokens = value(f"{embed_name}.hook_tokens")
    stream.add(f"{embed_name}.tokens", tokens)
    positions = 0.0
    if embed.position is not None:  # rotary and relative positions are not added to the stream
        positions = value(f"{embed_name}.hook_positions")
        stream.add(f"{embed_name}.positions", positions)
    if embed.segment is not None:
        stream.add(f"{embed_name}.segments", value(f"{embed_name}.hook_sum") - tokens - positions)
    if embed.norm is not None:
        stream.frozen_norm(embed.norm, f"{embed_name}.norm")
    post_norm = model.config.norm == "post"
    for i, layer in enumerate(stack.layers):
        prefix = f"{stack_name}.layers.{i}"
        for sub in ("self_attn", "cross_attn", "ffn"):
            module = getattr(layer, sub, None)
            if module is None:
                continue
            if sub == "ffn":
                out = value(f"{prefix}.ffn.hook_out")
                last = _ffn_last(module)
                bias = getattr(module, last).bias
                stream.add(f"{prefix}.ffn", out if bias is None else out - bias)
                if bias is not None:
                    stream.add(f"{prefix}.ffn.{last}.bias", bias.expand_as(out), bias=True)
            else:
                for h, part in enumerate(_heads(value(f"{prefix}.{sub}.hook_context"), module.w_o)):
                    stream.add(f"{prefix}.{sub}.head.{h}", part)
                if module.w_o.bias is not None:
                    stream.add(f"{prefix}.{sub}.w_o.bias", module.w_o.bias.expand_as(part), bias=True)
            if post_norm:
                stream.frozen_norm(getattr(layer, f"{sub}_residual").norm, f"{prefix}.{sub}_residual.norm")
    if stack.final_norm is not None:
        stream.frozen_norm(stack.final_norm, f"{stack_name}.final_norm")
    b, t = logits.shape[:2]
    token = torch.as_tensor(token).expand(b, t)
    proj = head.proj
    unembed = proj.weight[token] * head.scale  # [B, T, d_model]: the token's row of the output projection
    read = [(part * unembed).sum(-1) for part in stream.parts]  # [B, T] each
    names, is_bias = list(stream.names), list(stream.is_bias)
    if proj.bias is not None:
        read.append(proj.bias[token])
        names.append("lm_head.proj.bias")
        is_bias.append(True)
    parts = [r for r, bias in zip(read, is_bias) if not bias]
    biases = [r for r, bias in zip(read, is_bias) if bias]
    return Attribution(
        [n for n, bias in zip(names, is_bias) if not bias], torch.stack(parts),
        [n for n, bias in zip(names, is_bias) if bias],
        torch.stack(biases) if biases else torch.zeros(0, b, t),
        logits.gather(-1, token[..., None])[..., 0],
    )
