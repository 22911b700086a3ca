"""Sentence encoding: an encoder without a task head (imported, or a body to embed with), not trained
here; its prediction is a sentence embedding, as sentence-transformers makes them.

An embedding is the mean of the encoder's last hidden states over a text's tokens (its [CLS]
and [SEP] included, padding excluded), scaled to unit length: MiniLM sentence embedders
(all-MiniLM-L6-v2) are used exactly this way. Pooling "cls" takes the first token instead.
"""

from __future__ import annotations

import torch

from glassformer.framing import sequence_ids, source_ids
from glassformer.tasks.kind import Kind


class Encode(Kind):
    name, family = "encode", "encoder-only"
    trainable = False


def sentence_embeddings(run, texts: list[str], pooling: str = "mean") -> torch.Tensor:
    """Unit-length embeddings [N, d_model] of texts, in order, from a run of any family.

    Args:
        run: a Run of any family (any head; the head is not used): an encoder-decoder's encoder
            output is pooled, a decoder-only model's final hidden states.
        pooling: "mean" over the non-pad tokens, "cls" for the first token, "last" for the last one.
    """
    decoder = run.config.family == "decoder-only"
    if run.config.family == "encoder-decoder":  # the encoder's output, the source framed as for translate
        rows = [source_ids(run.tokenizer, text, run.framing) for text in texts]
    else:
        rows = [sequence_ids(run.tokenizer, text, run.framing, end=not decoder) for text in texts]
    device = next(run.model.parameters()).device
    ids = torch.full((len(rows), max(map(len, rows))), run.tokenizer.pad_id, dtype=torch.long, device=device)
    real = torch.zeros(ids.shape, dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        real[i, : len(row)] = True
    with torch.no_grad():
        encode = run.model.hidden_states if decoder else run.model.encode
        hidden = encode(ids, real[:, None, None, :])  # [N, T, d_model]
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "last":
        pooled = hidden[torch.arange(len(rows)), real.sum(1) - 1]
    else:
        weights = real.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
