"""Predictions of classification models: labels with probabilities for texts."""

from __future__ import annotations

import torch

from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start, sequence_ids
from glassformer.nn.masks import padding_mask
from glassformer.run_folder import Run
from glassformer.train.batches import pad


@torch.no_grad()
def classify_texts(run: Run, texts: list[str], device="cpu", batch_size: int = 64) -> list[dict[str, float]]:
    """For each text, every label's probability (highest first)."""
    if run.kind != "classify":
        raise UserError(f"{run.path} is a {run.kind!r} model; classify needs a 'classify' model")
    framing = Framing.from_meta(run.meta)
    rows = [sequence_ids(run.tokenizer, text, framing) for text in texts]
    for text, row in zip(texts, rows):
        if len(row) > run.config.max_len:
            raise UserError(f"text of {len(row)} tokens is longer than the model's maximum of {run.config.max_len}: {text[:40]!r}")
    out = []
    for start in range(0, len(rows), batch_size):
        ids = pad(rows[start : start + batch_size], run.tokenizer.pad_id).to(device)
        mask = padding_mask(ids, run.tokenizer.pad_id)
        if run.config.family == "encoder-decoder":  # BART's decoder reads the text shifted right
            first = ids.new_full((len(ids), 1), decoder_start(run.tokenizer, framing))
            logits = run.model(ids, torch.cat([first, ids[:, :-1]], 1), mask, mask)
        else:
            logits = run.model(ids, mask)
        probs = torch.softmax(logits.float(), dim=-1)
        for row in probs.tolist():
            ranked = sorted(zip(run.labels, row), key=lambda pair: -pair[1])
            out.append(dict(ranked))
    return out
