"""Masked language modelling: lines of text with BERT's masking of 15% of the tokens."""

from __future__ import annotations

from glassformer.tasks.lm import LanguageModel
from glassformer.train.batches import IGNORE, Batch, mask_tokens, pad


class MaskedLM(LanguageModel):
    """Reads and encodes as a language model does, but predicts masked tokens with a bidirectional encoder."""

    name, family, head, default_preset = "mlm", "encoder-only", "mlm", "small-encoder"
    extra_tokens = 0

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        masked, out = mask_tokens(ids, source, mask_prob, generator)
        return Batch({"ids": masked}, out, int((out != IGNORE).sum()))
