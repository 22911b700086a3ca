"""Token classification: CoNLL 'token<TAB>tag' files, a BIO tag per word, entity-level F1."""

from __future__ import annotations

from glassformer.data.conll import read_conll
from glassformer.errors import DataError, UserError
from glassformer.tasks.kind import Kind
from glassformer.train.batches import IGNORE, Batch, Encoded, pad
from glassformer.train.tagging import align_labels, entity_f1, predict_tags, tag_labels


class Tag(Kind):
    name, family, head = "tag", "encoder-only", "tag"
    primary_metric = "entity_f1"

    def read(self, path):
        return read_conll(path)

    def texts(self, examples):
        texts = [" ".join(e.tokens) for e in examples]
        return texts, texts

    def label_set(self, splits):
        labels = tag_labels([e.tags for e in splits.train])
        unknown = sorted({t for e in splits.valid + splits.test for t in e.tags} - set(labels))
        if unknown:
            raise UserError(f"labels {', '.join(map(repr, unknown[:5]))} occur in held-out data but not in training data")
        return labels

    def encode(self, examples, source, target, labels, max_len, framing):
        label_ids = {label: i for i, label in enumerate(labels)}
        inputs, targets, skipped = [], [], 0
        for example in examples:
            unknown = sorted(set(example.tags) - set(label_ids))
            if unknown:
                raise DataError(f"tag {unknown[0]!r} is not one of the model's tags: {', '.join(labels)}")
            ids, row = align_labels(source, list(example.tokens), list(example.tags), label_ids, framing)
            if len(ids) > max_len:
                skipped += 1
                continue
            inputs.append(ids)
            targets.append(row)
        return Encoded(self.name, inputs, targets, skipped)

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        tags = pad([encoded.targets[i] for i in indices], IGNORE)
        return Batch({"ids": ids}, tags, int((tags != IGNORE).sum()))

    def _predict(self, run, examples, device, batch_size=64):
        return predict_tags(run.model, run.tokenizer, run.labels, [list(e.tokens) for e in examples],
                            run.config.max_len, run.framing, device=device, batch_size=batch_size)

    def predicted_metrics(self, run, encoded, examples, batch_size, device, limit, world):
        """Entity-level precision, recall and F1 of the predicted BIO tags."""
        from glassformer.train.distributed import unwrap

        run = run.with_model(unwrap(run.model).eval())
        scores = entity_f1([list(e.tags) for e in examples], self._predict(run, examples, device, batch_size))
        return {"entity_precision": scores["precision"], "entity_recall": scores["recall"], "entity_f1": scores["f1"]}

    def example_lines(self, run, examples, device):
        lines = []
        for e, tags in zip(examples, self._predict(run, examples, device)):
            mark = "ok " if list(tags) == list(e.tags) else "   "
            lines.append(f"{mark} " + " ".join(w if t == "O" else f"[{w}/{t}]" for w, t in zip(e.tokens, tags)))
        return lines
