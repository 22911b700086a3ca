"""Held-out metrics: loss, perplexity, token accuracy, exact-match, BLEU, accuracy.

With several processes, each scores every world-th example and the sums are reduced, so all
processes end with the same metrics.
"""

from __future__ import annotations

import math

import torch

from glassformer.run_folder import Run
from glassformer.train.batches import IGNORE, Encoded, make_batch
from glassformer.train.distributed import World, all_reduce_sum, gather_objects, unwrap
from glassformer.train.loss import cross_entropy, model_outputs

# The metric that picks the best checkpoint, per kind, and whether higher is better.
PRIMARY_METRIC = {
    "seq2seq": "exact_match", "lm": "loss", "mlm": "loss", "classify": "accuracy", "tag": "entity_f1", "qa": "exact_match",
}
HIGHER_IS_BETTER = {"exact_match": True, "accuracy": True, "bleu": True, "entity_f1": True, "loss": False}
EVAL_SEED = 1234


def is_better(metric: str, new: float, old: float) -> bool:
    return new > old if HIGHER_IS_BETTER[metric] else new < old


@torch.no_grad()
def teacher_forced(run: Run, encoded: Encoded, batch_size: int, device, world: World = World()) -> dict[str, float]:
    """Loss (no label smoothing), perplexity and accuracy over every scored target."""
    model = unwrap(run.model).eval()
    mine = list(range(world.rank, len(encoded), world.size))
    total_loss, total, correct = 0.0, 0, 0
    for start in range(0, len(mine), batch_size):
        indices = mine[start : start + batch_size]
        # Masked-LM masks depend on the examples only, so every evaluation scores the same positions.
        generator = torch.Generator().manual_seed(EVAL_SEED + indices[0])
        batch = make_batch(encoded, indices, run.source_tokenizer, run.target_tokenizer, generator=generator)
        batch = batch.to(device)
        logits = model_outputs(model, batch)
        total_loss += cross_entropy(logits, batch.targets).item() * batch.n_targets
        scored = batch.targets != IGNORE
        correct += int((logits.argmax(-1)[scored] == batch.targets[scored]).sum())
        total += batch.n_targets
    total_loss, total, correct = all_reduce_sum([total_loss, float(total), float(correct)], world, device)
    loss = total_loss / max(total, 1)
    name = {"classify": "accuracy", "qa": "position_accuracy"}.get(encoded.kind, "token_accuracy")
    metrics = {"loss": loss, name: correct / max(total, 1)}
    if encoded.kind in ("seq2seq", "lm", "mlm"):
        metrics["perplexity"] = math.exp(min(loss, 50.0))
    return metrics


def translations(run: Run, sources: list[list[int]], batch_size: int) -> list[list[int]]:
    """Greedy translations (ids, without <start>/<end>) of framed sources."""
    from glassformer.generate import greedy_seq2seq

    out: list[list[int]] = []
    for start in range(0, len(sources), batch_size):
        out.extend(greedy_seq2seq(run, sources[start : start + batch_size]))
    return out


def decoded_metrics(run: Run, encoded: Encoded, batch_size: int, limit: int | None, world: World = World()) -> dict:
    """Exact-match and BLEU of greedy translations against the references."""
    import sacrebleu

    n = len(encoded) if limit is None else min(limit, len(encoded))
    mine = list(range(world.rank, n, world.size))
    local = Run(run.path, unwrap(run.model).eval(), run.config, run.kind, run.source_tokenizer,
                run.target_tokenizer, run.labels, run.meta)
    outputs = translations(local, [encoded.inputs[i] for i in mine], batch_size)
    pairs = sorted(gather_objects(list(zip(mine, outputs)), world))
    hypotheses = [h for _, h in pairs]
    exact = sum(h == encoded.targets[i] for i, h in pairs)
    decode = run.target_tokenizer.decode
    hyp_text = [decode(h) for h in hypotheses]
    ref_text = [decode(encoded.targets[i]) for i in range(n)]
    bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none" if run.target_tokenizer.kind == "word" else "13a")
    return {"exact_match": exact / max(n, 1), "bleu": bleu.score, "decoded": n}


def evaluate(
    run: Run, encoded: Encoded, examples: list, batch_size: int, device, decode_limit: int | None = None,
    world: World = World(),
) -> dict:
    """All metrics of the run's kind on one encoded split."""
    metrics = teacher_forced(run, encoded, batch_size, device, world)
    if encoded.kind == "seq2seq":
        metrics.update(decoded_metrics(run, encoded, batch_size, decode_limit, world))
    elif encoded.kind == "tag":
        metrics.update(entity_metrics(run, examples, batch_size, device))
    elif encoded.kind == "qa":
        metrics.update(answer_metrics(run, examples, batch_size, device))
    return metrics


@torch.no_grad()
def entity_metrics(run: Run, examples: list, batch_size: int, device) -> dict:
    """Entity-level precision, recall and F1 of the predicted BIO tags."""
    from glassformer.train.tagging import entity_f1, predict_tags

    model = unwrap(run.model).eval()
    predicted = predict_tags(model, run.tokenizer, run.labels, [list(e.tokens) for e in examples],
                             run.config.max_len, device=device, batch_size=batch_size)
    scores = entity_f1([list(e.tags) for e in examples], predicted)
    return {"entity_precision": scores["precision"], "entity_recall": scores["recall"], "entity_f1": scores["f1"]}


@torch.no_grad()
def answer_metrics(run: Run, examples: list, batch_size: int, device) -> dict:
    """SQuAD-style exact-match and token F1 of the predicted answer spans."""
    from glassformer.train.qa import answer_questions, qa_metrics

    model = unwrap(run.model).eval()
    answers = answer_questions(model, run.tokenizer, [e.question for e in examples], [e.context for e in examples],
                               run.config.max_len, device=device, batch_size=batch_size)
    scores = qa_metrics(answers, [e.answer_text for e in examples])
    return {"exact_match": scores["exact_match"], "answer_f1": scores["f1"]}
