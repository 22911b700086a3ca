"""Text classification: 'label<TAB>text' lines, one label per text from the encoder's pooled output,
and the predictions of a classification run: labels with probabilities for texts."""

from __future__ import annotations

import torch

from glassformer.data import Labeled, read_labeled
from glassformer.data.readers import iter_labeled
from glassformer.errors import DataError, UserError
from glassformer.framing import decoder_start, sequence_ids
from glassformer.nn.masks import padding_mask
from glassformer.tasks.kind import Kind
from glassformer.train.batches import Batch, Encoded, pad


class Classify(Kind):
    name, family, head = "classify", "encoder-only", "classify"
    primary_metric = accuracy_name = "accuracy"
    answer = "label"
    labelled = True

    def read(self, path):
        return read_labeled(path)

    def stream(self, path):
        return iter_labeled(path)

    def texts(self, examples):
        texts = [e.text for e in examples if isinstance(e, Labeled)]
        return texts, texts

    def example_labels(self, example):
        return (example.label,)

    def labels_from(self, train, held_out):
        labels = sorted(train)
        unknown = sorted(held_out - set(labels))
        if unknown:
            raise UserError(f"labels {', '.join(map(repr, unknown[:5]))} occur in held-out data but not in training data")
        return labels

    def encode(self, examples, source, target, labels, max_len, framing):
        inputs, targets, skipped = [], [], 0
        for example in examples:
            ids = sequence_ids(source, example.text, framing)
            if len(ids) > max_len:
                skipped += 1
                continue
            if example.label not in labels:
                raise DataError(f"label {example.label!r} is not one of the model's labels: {', '.join(labels)}")
            inputs.append(ids)
            targets.append(labels.index(example.label))
        return Encoded(self.name, inputs, targets, skipped)

    def store_columns(self, source, target, labels):
        return {"labels": ("<i4", 0, len(labels))}

    def store_rows(self, examples, source, target, labels, framing, max_len):
        encoded = self.encode(examples, source, target, labels, max_len, framing)
        return encoded.inputs, {"labels": [[label] for label in encoded.targets]}

    def from_store(self, store, indices, skipped):
        return Encoded(self.name, store.rows(indices), store.rows(indices, "labels", scalar=True), skipped,
                       lengths=store.lengths[indices])

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        labels = torch.tensor([encoded.targets[i] for i in indices], dtype=torch.long)
        return Batch({"ids": ids}, labels, len(indices))

    def example_lines(self, run, examples, device):
        lines = []
        for e, probs in zip(examples, classify_texts(run, [e.text for e in examples], device)):
            label, p = next(iter(probs.items()))
            mark = "ok " if label == e.label else "   "
            lines.append(f"{mark} {e.text!r}: reference {e.label}, predicted {label} ({p:.2f})")
        return lines

    def text_inputs(self, run, text, target=None):
        ids = sequence_ids(run.source_tokenizer, text, run.framing)
        if run.config.family == "encoder-decoder":  # BART's decoder reads the text shifted right
            return [ids, [decoder_start(run.source_tokenizer, run.framing), *ids[:-1]]]
        return [ids]

    def answer_position(self, run, rows, what):
        return 0  # unused: the label is read from the whole text


@torch.no_grad()
def classify_texts(run, texts: list[str], device="cpu", batch_size: int = 64) -> list[dict[str, float]]:
    """For each text, every label's probability (highest first), from a classification run."""
    if run.kind != "classify":
        raise UserError(f"{run.path} is a {run.kind!r} model; classify needs a 'classify' model")
    rows = [sequence_ids(run.tokenizer, text, run.framing) for text in texts]
    for text, row in zip(texts, rows):
        if len(row) > run.config.max_len:
            raise UserError(f"text of {len(row)} tokens is longer than the model's maximum of {run.config.max_len}: {text[:40]!r}")
    out = []
    for start in range(0, len(rows), batch_size):
        ids = pad(rows[start : start + batch_size], run.tokenizer.pad_id).to(device)
        mask = padding_mask(ids, run.tokenizer.pad_id)
        if run.config.family == "encoder-decoder":  # BART's decoder reads the text shifted right
            first = ids.new_full((len(ids), 1), decoder_start(run.tokenizer, run.framing))
            logits = run.model(ids, torch.cat([first, ids[:, :-1]], 1), mask, mask)
        else:
            logits = run.model(ids, mask)
        probs = torch.softmax(logits.float(), dim=-1)
        for row in probs.tolist():
            ranked = sorted(zip(run.labels, row), key=lambda pair: -pair[1])
            out.append(dict(ranked))
    return out
