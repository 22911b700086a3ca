"""Does cross-attention find the word alignment? Agreement of each head with a known alignment."""

from __future__ import annotations

import torch

from glassformer.framing import Framing, source_ids, target_ids
from glassformer.inspect.recorder import record
from glassformer.run_folder import Run
from glassformer.train.batches import pad


@torch.no_grad()
def alignment_agreement(run: Run, pairs: list, batch_size: int = 64) -> dict[tuple[int, int], float]:
    """For each decoder layer and head, the fraction of aligned target words whose most-attended
    source word is the one the pair's alignment names.

    Teacher-forced: the query that predicts target word j (decoder input position j) is compared
    with alignment[j]; target words aligned to nothing (-1) are skipped. Needs a word-level source
    tokenizer, so that source token i is source word i.

    Args:
        pairs: `glassformer.data.Pair`s with `alignment` set.
    Returns:
        {(layer, head): agreement in [0, 1]}.
    """
    if run.kind != "seq2seq":
        raise ValueError(f"alignment needs an encoder-decoder run, not {run.kind!r}")
    framing = Framing.from_meta(run.meta)
    hits: dict[tuple[int, int], int] = {}
    total = 0
    model = run.model.eval()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        src = pad([source_ids(run.source_tokenizer, p.source, framing) for p in chunk], run.source_tokenizer.pad_id)
        tgt = pad([target_ids(run.target_tokenizer, p.target, framing)[0] for p in chunk], run.target_tokenizer.pad_id)
        with record(model, names="decoder.layers.*.cross_attn.hook_probs", values=True) as rec:
            model(src, tgt)
        rows = [(b, j, a) for b, p in enumerate(chunk) for j, a in enumerate(p.alignment) if a >= 0]
        total += len(rows)
        b_idx, j_idx, a_idx = (torch.tensor(x) for x in zip(*rows))
        for item in rec.select("decoder.layers.*.cross_attn.hook_probs"):
            layer = int(item.name.split(".layers.")[1].split(".")[0])
            chosen = item.value.argmax(dim=-1)  # [B, H, T]: most-attended source position
            for head in range(chosen.size(1)):
                agree = int((chosen[b_idx, head, j_idx] == a_idx).sum())
                hits[(layer, head)] = hits.get((layer, head), 0) + agree
    return {key: count / max(total, 1) for key, count in sorted(hits.items())}
