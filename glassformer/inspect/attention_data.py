"""Every attention-probability map of one input, per kind, layer and head, for viewers to draw.

Kinds: "self" is an encoder's self-attention (encoder-decoder and encoder-only), "decoder" is
the masked self-attention of a decoder (encoder-decoder and decoder-only), "cross" is the
encoder-decoder attention (queries from the decoder, keys from the encoder output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from glassformer.inspect.decoding import DecodeStep, decode_steps
from glassformer.inspect.recorder import record
from glassformer.inspect.subject import Subject, input_ids, shifted_source, target_input_ids, token_labels
from glassformer.errors import UserError

KINDS = ("self", "decoder", "cross")
KIND_TITLES = {
    "self": "encoder self-attention",
    "decoder": "decoder masked self-attention",
    "cross": "cross-attention (decoder → encoder)",
}
_PATTERNS = {
    "self": "encoder.layers.{}.self_attn.hook_probs",
    "decoder": "decoder.layers.{}.self_attn.hook_probs",
    "cross": "decoder.layers.{}.cross_attn.hook_probs",
}


@dataclass
class AttentionSet:
    """Attention maps of one input.

    Args:
        maps: kind -> one [H, queries, keys] array per layer.
        source_tokens: the encoder's tokens (keys of "self" and "cross"); empty for decoder-only.
        target_tokens: the decoder's input tokens (queries of "decoder" and "cross").
        steps: the greedy decoding steps that produced the decoder's input, if any.
        probabilities: one [V] array per step, the softmax of that step's logits.
    """

    family: str
    maps: dict[str, list[np.ndarray]]
    source_tokens: list[str]
    target_tokens: list[str]
    steps: list[DecodeStep] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [k for k in KINDS if self.maps.get(k)]

    def axes(self, kind: str) -> tuple[list[str], list[str]]:
        """(query tokens, key tokens) of a kind."""
        if kind == "self":
            return self.source_tokens, self.source_tokens
        if kind == "decoder":
            return self.target_tokens, self.target_tokens
        return self.target_tokens, self.source_tokens

    def get(self, kind: str, layer: int) -> np.ndarray:
        """The [H, queries, keys] map, or a UserError naming what exists."""
        if kind not in self.kinds():
            raise UserError(f"a {self.family} model has no {kind!r} attention; choose one of: {', '.join(self.kinds())}")
        layers = self.maps[kind]
        if not 0 <= layer < len(layers):
            raise UserError(f"--layer {layer} is out of range: the {KIND_TITLES[kind]} has layers 0..{len(layers) - 1}")
        return layers[layer]


def _maps(recording, kinds: list[str], n_layers: dict[str, int], steps: dict[str, int]) -> dict[str, list[np.ndarray]]:
    out = {}
    for kind in kinds:
        out[kind] = [
            recording.value(_PATTERNS[kind].format(i), steps[kind])[0].to(torch.float64).numpy()
            for i in range(n_layers[kind])
        ]
    return out


@torch.no_grad()
def collect_attention(subject: Subject, text: str, target: str | None = None, max_steps: int = 20) -> AttentionSet:
    """Run the subject on text and keep every attention map.

    An encoder-decoder decodes greedily (or reads `target`, teacher-forced) and a decoder-only
    model continues its prompt greedily; the decoder's maps are those of the last step, which
    covers the whole decoded sequence. A classifier reads its text once, as an encoder does (an
    encoder-decoder classifier's decoder the source shifted right).
    """
    model, family = subject.model, subject.family
    ids = input_ids(subject, text)
    first = token_labels(subject.source_tokenizer, ids[0])
    decoder_in = None
    if family == "encoder-decoder" and target is not None:
        decoder_in = target_input_ids(subject, target)
    elif family == "encoder-decoder" and subject.config.head != "none":
        decoder_in = shifted_source(subject, ids)
    with record(model, names="*attn.hook_probs", values=True) as recording:
        steps: list[DecodeStep] = []
        if family == "encoder-only" or (family == "decoder-only" and subject.config.head != "none"):
            model(ids)
        elif decoder_in is not None:
            model(ids, decoder_in)
        else:
            steps = decode_steps(model, ids, subject.start_id, subject.end_id, max_steps, recording)
    last = recording.n_steps - 1
    if family == "encoder-only":
        maps = _maps(recording, ["self"], {"self": len(model.encoder.layers)}, {"self": 0})
        return AttentionSet(family, maps, first, [])
    n_dec = len(model.decoder.layers)
    if family == "decoder-only":
        decoder_ids = steps[-1].prefix if steps else ids[0].tolist()
        maps = _maps(recording, ["decoder"], {"decoder": n_dec}, {"decoder": last})
        source: list[str] = []
    else:
        decoder_ids = steps[-1].prefix if steps else decoder_in[0].tolist()
        counts = {"self": len(model.encoder.layers), "decoder": n_dec, "cross": n_dec}
        maps = _maps(recording, ["self", "decoder", "cross"], counts, {"self": 0, "decoder": last, "cross": last})
        source = first
    probabilities = [torch.softmax(s.logits, dim=-1).to(torch.float64).numpy() for s in steps]
    return AttentionSet(
        family, maps, source, token_labels(subject.target_tokenizer, decoder_ids), steps, probabilities
    )
