"""Examples to ids, ids to padded batches, and a batch order that can resume mid-epoch.

Targets use -100 (PyTorch's ignore_index) where no prediction is scored: padding, and in
masked-LM every position that was not chosen for prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassformer.data import Labeled, Pair, Text
from glassformer.errors import DataError
from glassformer.framing import Framing, decoder_start, sequence_ids, source_ids, target_ids
from glassformer.text import Tokenizer

IGNORE = -100


@dataclass
class Encoded:
    """A split as ids: sources/sequences, and targets (seq2seq ids, class ids, per-token tag ids,
    or answer (start, end) positions), in example order."""

    kind: str
    inputs: list[list[int]]
    targets: list[list[int]] | list[int] | None
    skipped: int = 0
    segments: list[list[int]] | None = None
    """Segment ids per input (question 0, context 1) for question answering."""
    """Examples left out because they exceed the model's maximum length."""

    def __len__(self) -> int:
        return len(self.inputs)


def encode_examples(
    examples: list,
    kind: str,
    source: Tokenizer,
    target: Tokenizer,
    labels: list[str],
    max_len: int,
    framing: Framing = Framing(),
) -> Encoded:
    """Turn examples of one kind into ids framed as the model sees them."""
    if kind == "qa":
        return _encode_qa(examples, source, max_len)
    inputs, targets, skipped = [], [], 0
    label_ids = {label: i for i, label in enumerate(labels)}
    for example in examples:
        if kind == "seq2seq":
            assert isinstance(example, Pair)
            src = source_ids(source, example.source, framing)
            tgt_in, tgt_out = target_ids(target, example.target, framing)
            if len(src) > max_len or len(tgt_in) > max_len:
                skipped += 1
                continue
            inputs.append(src)
            targets.append(tgt_out[:-1])  # the words alone; framing adds <start>/<end> per batch
        elif kind in ("lm", "mlm"):
            assert isinstance(example, Text)
            ids = sequence_ids(source, example.text, framing)
            if len(ids) > max_len + (1 if kind == "lm" else 0):
                skipped += 1
                continue
            inputs.append(ids)
        elif kind == "classify":
            assert isinstance(example, Labeled)
            ids = sequence_ids(source, example.text, framing)
            if len(ids) > max_len:
                skipped += 1
                continue
            if example.label not in labels:
                raise DataError(f"label {example.label!r} is not one of the model's labels: {', '.join(labels)}")
            inputs.append(ids)
            targets.append(labels.index(example.label))
        elif kind == "tag":
            from glassformer.train.tagging import align_labels

            unknown = sorted(set(example.tags) - set(label_ids))
            if unknown:
                raise DataError(f"tag {unknown[0]!r} is not one of the model's tags: {', '.join(labels)}")
            ids, row = align_labels(source, list(example.tokens), list(example.tags), label_ids)
            if len(ids) > max_len:
                skipped += 1
                continue
            inputs.append(ids)
            targets.append(row)
        else:
            raise ValueError(f"no batching for kind {kind!r}")
    return Encoded(kind, inputs, targets if kind in ("seq2seq", "classify", "tag") else None, skipped)


def _encode_qa(examples: list, tokenizer: Tokenizer, max_len: int) -> Encoded:
    from glassformer.train.qa import encode_qa

    features, dropped = encode_qa(examples, tokenizer, max_len)
    return Encoded("qa", [f.ids for f in features], [[f.start, f.end] for f in features], dropped,
                   segments=[f.segments for f in features])


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids to one [B, T] tensor."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


@dataclass
class Batch:
    """Model inputs (keyword arguments by name) and the targets scored by the loss."""

    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor
    n_targets: int
    """Scored target positions (tokens, or sequences for classification)."""

    def to(self, device) -> "Batch":
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, self.targets.to(device), self.n_targets)


def make_batch(
    encoded: Encoded,
    indices: list[int],
    source: Tokenizer,
    target: Tokenizer,
    framing: Framing = Framing(),
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> Batch:
    """Collate examples `indices` of `encoded` into a padded batch for its kind."""
    kind = encoded.kind
    if kind == "seq2seq":
        src = pad([encoded.inputs[i] for i in indices], source.pad_id)
        start = decoder_start(target, framing)
        tgt_in = pad([[start, *encoded.targets[i]] for i in indices], target.pad_id)
        tgt_out = pad([[*encoded.targets[i], target.end_id] for i in indices], IGNORE)
        return Batch({"src": src, "tgt": tgt_in}, tgt_out, int((tgt_out != IGNORE).sum()))
    if kind == "lm":
        rows = [encoded.inputs[i] for i in indices]
        ids = pad([r[:-1] for r in rows], source.pad_id)
        out = pad([r[1:] for r in rows], IGNORE)
        return Batch({"ids": ids}, out, int((out != IGNORE).sum()))
    if kind == "mlm":
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        masked, out = mask_tokens(ids, source, mask_prob, generator)
        return Batch({"ids": masked}, out, int((out != IGNORE).sum()))
    if kind == "classify":
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        labels = torch.tensor([encoded.targets[i] for i in indices], dtype=torch.long)
        return Batch({"ids": ids}, labels, len(indices))
    if kind == "tag":
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        tags = pad([encoded.targets[i] for i in indices], IGNORE)
        return Batch({"ids": ids}, tags, int((tags != IGNORE).sum()))
    if kind == "qa":
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        segments = pad([encoded.segments[i] for i in indices], 0)
        spans = torch.tensor([encoded.targets[i] for i in indices], dtype=torch.long)  # [B, 2]
        return Batch({"ids": ids, "segments": segments}, spans, 2 * len(indices))
    raise ValueError(f"no batching for kind {kind!r}")


def mask_tokens(
    ids: torch.Tensor, tokenizer: Tokenizer, prob: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose `prob` of the real tokens; of those 80% become <mask>, 10% a random
    token, 10% stay. Returns (masked ids, targets with IGNORE at unchosen positions)."""
    special = torch.tensor(sorted(tokenizer.special_ids))
    candidates = ~torch.isin(ids, special)
    draw = torch.rand(ids.shape, generator=generator)
    chosen = candidates & (draw < prob)
    # Every sequence predicts at least one token, so no batch row is wasted.
    first = (candidates & ~chosen.any(dim=1, keepdim=True)).long().argmax(dim=1)
    rows = ~chosen.any(dim=1) & candidates.any(dim=1)
    chosen[rows, first[rows]] = True
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    action = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (action < 0.8)] = tokenizer.mask_id
    randomise = chosen & (action >= 0.8) & (action < 0.9)
    low = len(tokenizer.special_ids)
    random_ids = torch.randint(low, tokenizer.vocab_size, ids.shape, generator=generator)
    masked[randomise] = random_ids[randomise]
    return masked, targets


class BatchOrder:
    """Shuffled batches of example indices, epoch after epoch, fixed by (seed, epoch).

    The position (epoch, batch) is all the state there is, so a resumed run continues with the
    very batch an uninterrupted run would have taken next. Each of `world` processes takes every
    world-th example of the global batch.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if n_examples < 1:
            raise ValueError("no training examples")
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        # Kept as a tensor (8 bytes an example), not a list of Python ints (about 36): a corpus
        # of tens of millions of lines would otherwise spend a gigabyte on its batch order.
        if self._perm is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.n, generator=generator)
        return self._perm

    @property
    def batches_per_epoch(self) -> int:
        return max(1, self.n // self.batch_size)

    def next(self) -> list[int]:
        """This process's share of the next global batch."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        perm = self._permutation()
        start = self.position * self.batch_size
        global_batch = perm[start : start + self.batch_size] if self.n >= self.batch_size else perm
        self.position += 1
        return global_batch[self.rank :: self.world].tolist()

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self._perm = int(state["epoch"]), int(state["position"]), None
