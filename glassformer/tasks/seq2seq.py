"""Sequence to sequence: 'source<TAB>target' pairs, teacher forcing, greedy decoding for exact-match and BLEU."""

from __future__ import annotations

import numpy as np

from glassformer.data import Pair, read_pairs
from glassformer.data.prepared import token_dtype
from glassformer.data.readers import iter_pairs
from glassformer.framing import decoder_start, source_ids, target_ids
from glassformer.tasks.kind import Kind
from glassformer.train.batches import IGNORE, Batch, Encoded, pad
from glassformer.train.distributed import World, gather_objects, unwrap


class Seq2Seq(Kind):
    name, family, default_preset = "seq2seq", "encoder-decoder", "small-seq2seq"
    primary_metric = "exact_match"
    perplexity = True
    two_vocabularies = True
    answer = predicts = "next target token"
    decodes = target_prefix = True

    def read(self, path):
        return read_pairs(path)

    def stream(self, path):
        return iter_pairs(path)

    def texts(self, examples):
        return [e.source for e in examples if isinstance(e, Pair)], [e.target for e in examples]

    def encode(self, examples, source, target, labels, max_len, framing):
        inputs, targets, skipped = [], [], 0
        for example in examples:
            src = source_ids(source, example.source, framing)
            tgt_in, tgt_out = target_ids(target, example.target, framing)
            if len(src) > max_len or len(tgt_in) > max_len:
                skipped += 1
                continue
            inputs.append(src)
            targets.append(tgt_out[:-1])  # the words alone; framing adds <start>/<end> per batch
        return Encoded(self.name, inputs, targets, skipped)

    def store_columns(self, source, target, labels):
        return {"targets": (token_dtype(target.vocab_size), 0, target.vocab_size)}

    def store_rows(self, examples, source, target, labels, framing, max_len):
        encoded = self.encode(examples, source, target, labels, max_len, framing)
        return encoded.inputs, {"targets": encoded.targets}

    def store_fits(self, store, indices, max_len):
        # <start> + target words feed the decoder, as encode counts them
        return (store.lengths[indices] <= max_len) & (store.column_lengths("targets")[indices] + 1 <= max_len)

    def from_store(self, store, indices, skipped):
        lengths = np.maximum(store.lengths[indices], store.column_lengths("targets")[indices] + 1)
        return Encoded(self.name, store.rows(indices), store.rows(indices, "targets"), skipped, lengths=lengths)

    def row_lengths(self, encoded):
        if encoded.lengths is not None:
            return encoded.lengths
        return np.fromiter((max(len(s), len(t) + 1) for s, t in zip(encoded.inputs, encoded.targets)), dtype=np.int64,
                           count=len(encoded))

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        src = pad([encoded.inputs[i] for i in indices], source.pad_id)
        start = decoder_start(target, framing)
        tgt_in = pad([[start, *encoded.targets[i]] for i in indices], target.pad_id)
        tgt_out = pad([[*encoded.targets[i], target.end_id] for i in indices], IGNORE)
        return Batch({"src": src, "tgt": tgt_in}, tgt_out, int((tgt_out != IGNORE).sum()))

    def predicted_metrics(self, run, encoded, examples, batch_size, device, limit, world):
        return decoded_metrics(run, encoded, batch_size, limit, world)

    def example_lines(self, run, examples, device):
        from glassformer.generate import translate_texts

        lines = []
        outputs = translate_texts(run, [e.source for e in examples], device=device)
        for e, out in zip(examples, outputs):
            mark = "ok " if out == e.target else "   "
            lines.append(f"{mark} source:    {e.source}\n    reference: {e.target}\n    output:    {out}")
        return lines

    def text_inputs(self, run, text, target=None):
        return [source_ids(run.source_tokenizer, text, run.framing),
                target_ids(run.target_tokenizer, target or "", run.framing)[0]]


def translations(run, sources: list[list[int]], batch_size: int) -> list[list[int]]:
    """Greedy translations (ids, without <start>/<end>) of framed sources."""
    from glassformer.generate import greedy_seq2seq

    out: list[list[int]] = []
    for start in range(0, len(sources), batch_size):
        out.extend(greedy_seq2seq(run, sources[start : start + batch_size]))
    return out


def decoded_metrics(run, encoded: Encoded, batch_size: int, limit: int | None, world: World = World()) -> dict:
    """Exact-match and BLEU of greedy translations against the references."""
    import sacrebleu

    n = len(encoded) if limit is None else min(limit, len(encoded))
    mine = list(range(world.rank, n, world.size))
    local = run.with_model(unwrap(run.model).eval())
    outputs = translations(local, [encoded.inputs[i] for i in mine], batch_size)
    pairs = sorted(gather_objects(list(zip(mine, outputs)), world))
    hypotheses = [h for _, h in pairs]
    exact = sum(h == encoded.targets[i] for i, h in pairs)
    decode = run.target_tokenizer.decode
    hyp_text = [decode(h) for h in hypotheses]
    ref_text = [decode(encoded.targets[i]) for i in range(n)]
    bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none" if run.target_tokenizer.kind == "word" else "13a")
    return {"exact_match": exact / max(n, 1), "bleu": bleu.score, "decoded": n}
