"""Language modelling: lines of text, each predicting its next token."""

from __future__ import annotations

from glassformer.data.readers import iter_text, read_text
from glassformer.framing import sequence_ids
from glassformer.tasks.kind import Kind
from glassformer.train.batches import IGNORE, Batch, Encoded, pad


class LanguageModel(Kind):
    name, family, default_preset = "lm", "decoder-only", "small-lm"
    perplexity = True
    pretrains_on_any_text = True
    prepared_text = True
    extra_tokens = 1  # a row of max_len + 1 ids gives max_len inputs and max_len shifted targets
    answer = predicts = "next token"
    decodes = True

    def read(self, path):
        return read_text(path)

    def stream(self, path):
        return iter_text(path)

    def encode(self, examples, source, target, labels, max_len, framing):
        inputs, skipped = [], 0
        for example in examples:
            ids = sequence_ids(source, example.text, framing)
            if len(ids) > max_len + self.extra_tokens:
                skipped += 1
                continue
            inputs.append(ids)
        return Encoded(self.name, inputs, None, skipped)

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        rows = [encoded.inputs[i] for i in indices]
        ids = pad([r[:-1] for r in rows], source.pad_id)
        out = pad([r[1:] for r in rows], IGNORE)
        return Batch({"ids": ids}, out, int((out != IGNORE).sum()))

    def text_inputs(self, run, text, target=None):
        return [sequence_ids(run.source_tokenizer, text, run.framing, end=False)]  # a prompt: no <end>
