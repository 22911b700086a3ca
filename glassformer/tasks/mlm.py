"""Masked language modelling: lines of text with BERT's masking of 15% of the tokens."""

from __future__ import annotations

from glassformer.errors import UserError
from glassformer.framing import sequence_ids
from glassformer.tasks.lm import LanguageModel
from glassformer.train.batches import IGNORE, Batch, mask_tokens, pad


class MaskedLM(LanguageModel):
    """Reads and encodes as a language model does, but predicts masked tokens with a bidirectional encoder."""

    name, family, head, default_preset = "mlm", "encoder-only", "mlm", "small-encoder"
    extra_tokens = 0
    answer, predicts = "token at <mask>", "token"
    decodes = False

    def text_inputs(self, run, text, target=None):
        return [sequence_ids(run.source_tokenizer, text, run.framing)]

    def answer_position(self, run, rows, what):
        masks = [i for i, x in enumerate(rows[-1]) if x == run.source_tokenizer.mask_id]
        if len(masks) != 1:
            raise UserError(f"{what} needs exactly one <mask> to read the answer at; it has {len(masks)}")
        return masks[0]

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        masked, out = mask_tokens(ids, source, mask_prob, generator)
        return Batch({"ids": masked}, out, int((out != IGNORE).sum()))
