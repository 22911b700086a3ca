"""Token classification: word tags onto sub-word pieces and back, and entity-level F1.

A sentence is framed <start> pieces <end>, as the run's framing puts them around a text. A word
may split into several pieces; only its first piece carries the word's tag, the others (and the
specials) are IGNORE'd by the loss, and at prediction time the word takes the tag predicted at
its first piece, as BERT does.

The kind "tag" (`Tag`, at the end) reads CoNLL 'token<TAB>tag' files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from glassformer.data.conll import iter_conll, read_conll
from glassformer.errors import DataError, UserError
from glassformer.framing import Framing, sequence_prefix, sequence_suffix
from glassformer.nn.masks import padding_mask
from glassformer.tasks.kind import Kind
from glassformer.text import Tokenizer
from glassformer.train.batches import IGNORE, Batch, Encoded, pad

OUTSIDE = "O"


def frame_words(tokenizer: Tokenizer, words: Sequence[str], framing: Framing) -> tuple[list[int], list[int]]:
    """Ids of <start> words <end>, each word encoded on its own, and where each word begins.

    A word that encodes to no piece at all (one the tokenizer's normaliser erases) becomes
    a single unknown piece, so that every word keeps a position and a tag.

    Args:
        tokenizer: any tokenizer.
        words: the sentence's words.
        framing: the run's framing.
    Returns:
        (ids [T], starts [len(words)]): starts[j] is the position in ids of word j's first piece.
    """
    ids, starts = list(sequence_prefix(tokenizer, framing)), []
    for word in words:
        pieces = tokenizer.encode(word) or [tokenizer.unk_id]
        starts.append(len(ids))
        ids.extend(pieces)
    ids.extend(sequence_suffix(tokenizer, framing))
    return ids, starts


def align_labels(
    tokenizer: Tokenizer, words: Sequence[str], tags: Sequence[str], label_ids: Mapping[str, int], framing: Framing
) -> tuple[list[int], list[int]]:
    """Framed ids and a label per position: the word's tag id at its first piece, IGNORE elsewhere.

    Args:
        tokenizer: any tokenizer.
        words: the sentence's words.
        tags: one tag per word.
        label_ids: tag -> label id.
        framing: the run's framing.
    Returns:
        (ids [T], labels [T]), with IGNORE (-100) at <start>, <end> and non-first pieces.
    """
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    ids, starts = frame_words(tokenizer, words, framing)
    labels = [IGNORE] * len(ids)
    for start, tag in zip(starts, tags):
        if tag not in label_ids:
            raise DataError(f"tag {tag!r} is not one of the model's labels: {', '.join(label_ids)}")
        labels[start] = label_ids[tag]
    return ids, labels


def decode_tags(predicted: Sequence[int] | torch.Tensor, starts: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Per-word tags from per-position label ids: each word takes its first piece's label.

    Args:
        predicted: label ids [T] (argmax of the tag logits) for one framed sentence.
        starts: [n_words] first-piece positions, as frame_words returns them.
        labels: label names in id order.
    """
    ids = predicted.tolist() if isinstance(predicted, torch.Tensor) else list(predicted)
    return [labels[ids[s]] for s in starts]


def tag_labels(sequences: Sequence[Sequence[str]]) -> list[str]:
    """The label set of tag sequences in a readable order: O, then B-/I- pairs by type."""
    seen = {tag for tags in sequences for tag in tags}
    kinds = sorted({tag[2:] for tag in seen if tag != OUTSIDE})
    # Both halves of every type, so a type seen only as B- can still be continued.
    return [OUTSIDE, *(f"{p}-{k}" for k in kinds for p in "BI")]


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of a BIO sequence as (type, start, end), end exclusive.

    Read as conlleval and seqeval's default mode do: an entity starts at B-X, or at an
    I-X that does not continue an entity of type X (so model predictions that break the
    BIO rules still count), and ends before O, B-, or a tag of another type.

    Args:
        tags: one tag per word, each "O", "B-TYPE" or "I-TYPE".
    """
    spans = []
    kind, start = None, 0
    for i, tag in enumerate([*tags, OUTSIDE]):
        if tag == OUTSIDE:
            prefix, new = "O", None
        else:
            prefix, _, new = tag.partition("-")
            if prefix not in ("B", "I") or not new:
                raise ValueError(f"tag {tag!r} at {i} is not a BIO tag (expected 'O', 'B-TYPE' or 'I-TYPE')")
        if kind is not None and (prefix != "I" or new != kind):
            spans.append((kind, start, i))
            kind = None
        if new is not None and kind is None:
            kind, start = new, i
    return spans


def entity_f1(gold_sequences: Sequence[Sequence[str]], predicted_sequences: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1, micro-averaged: an entity counts when its span and type both match.

    Args:
        gold_sequences: the reference tags of each sentence.
        predicted_sequences: the predicted tags of each sentence, the same lengths.
    Returns:
        {"precision", "recall", "f1"} in [0, 1]; 0 where a denominator is 0.
    """
    if len(gold_sequences) != len(predicted_sequences):
        raise ValueError(f"{len(gold_sequences)} gold sequences but {len(predicted_sequences)} predicted")
    n_gold = n_predicted = n_correct = 0
    for i, (gold, predicted) in enumerate(zip(gold_sequences, predicted_sequences)):
        if len(gold) != len(predicted):
            raise ValueError(f"sentence {i}: {len(gold)} gold tags but {len(predicted)} predicted")
        gold_spans, predicted_spans = set(entity_spans(gold)), set(entity_spans(predicted))
        n_gold += len(gold_spans)
        n_predicted += len(predicted_spans)
        n_correct += len(gold_spans & predicted_spans)
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@torch.no_grad()
def predict_tags(
    model: nn.Module,
    tokenizer: Tokenizer,
    labels: Sequence[str],
    sentences: Sequence[Sequence[str]],
    max_len: int,
    framing: Framing,
    device="cpu",
    batch_size: int = 64,
) -> list[list[str]]:
    """Tag every word of each sentence with a model whose output is tag logits [B, T, n_labels].

    Args:
        model: called as model(ids [B, T], mask [B, 1, 1, T]).
        tokenizer: the model's tokenizer.
        labels: label names in id order.
        sentences: each a list of words.
        max_len: the model's longest sequence.
        framing: the run's framing.
    """
    framed = [frame_words(tokenizer, words, framing) for words in sentences]
    for words, (ids, _) in zip(sentences, framed):
        if len(ids) > max_len:
            raise UserError(
                f"sentence of {len(ids)} tokens is longer than the model's maximum of {max_len}: "
                f"{' '.join(words)[:40]!r}"
            )
    was_training = model.training
    model.eval()
    out = []
    for first in range(0, len(framed), batch_size):
        chunk = framed[first:first + batch_size]
        ids = pad([row for row, _ in chunk], tokenizer.pad_id).to(device)
        predicted = model(ids, padding_mask(ids, tokenizer.pad_id)).argmax(-1).cpu()
        out.extend(decode_tags(row, starts, labels) for row, (_, starts) in zip(predicted, chunk))
    model.train(was_training)
    return out


class Tag(Kind):
    name, family, head = "tag", "encoder-only", "tag"
    primary_metric = "entity_f1"
    labelled = True

    def read(self, path):
        return read_conll(path)

    def stream(self, path):
        return iter_conll(path)

    def texts(self, examples):
        texts = [" ".join(e.tokens) for e in examples]
        return texts, texts

    def example_labels(self, example):
        return example.tags

    def labels_from(self, train, held_out):
        labels = tag_labels([sorted(train)])
        unknown = sorted(held_out - set(labels))
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

    def store_columns(self, source, target, labels):
        return {"labels": ("<i2" if len(labels) < 1 << 15 else "<i4", IGNORE, len(labels))}

    def store_rows(self, examples, source, target, labels, framing, max_len):
        encoded = self.encode(examples, source, target, labels, max_len, framing)
        return encoded.inputs, {"labels": encoded.targets}

    def from_store(self, store, indices, skipped):
        return Encoded(self.name, store.rows(indices), store.rows(indices, "labels"), skipped,
                       lengths=store.lengths[indices])

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
