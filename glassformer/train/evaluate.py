"""Held-out metrics: loss, perplexity and accuracy by teacher forcing for every kind, then the
kind's own metrics of its predictions (exact-match and BLEU of translations, entity F1, answers).

With several processes, each scores every world-th example and the sums are reduced, so all
processes end with the same metrics.
"""

from __future__ import annotations

import math

import torch

from glassformer.run_folder import Run
from glassformer.tasks import KINDS
from glassformer.train.batches import IGNORE, Encoded
from glassformer.train.distributed import World, all_reduce_sum, unwrap
from glassformer.train.loss import cross_entropy, model_outputs

# Whether higher is better, for each metric a kind may pick its best checkpoint by.
HIGHER_IS_BETTER = {"exact_match": True, "accuracy": True, "bleu": True, "entity_f1": True, "loss": False}
EVAL_SEED = 1234


def is_better(metric: str, new: float, old: float) -> bool:
    return new > old if HIGHER_IS_BETTER[metric] else new < old


@torch.no_grad()
def teacher_forced(run: Run, encoded: Encoded, batch_size: int, device, world: World = World()) -> dict[str, float]:
    """Loss (no label smoothing), perplexity and accuracy over every scored target."""
    model = unwrap(run.model).eval()
    kind = KINDS[encoded.kind]
    mine = list(range(world.rank, len(encoded), world.size))
    total_loss, total, correct = 0.0, 0, 0
    for start in range(0, len(mine), batch_size):
        indices = mine[start : start + batch_size]
        # Masked-LM masks depend on the examples only, so every evaluation scores the same positions.
        generator = torch.Generator().manual_seed(EVAL_SEED + indices[0])
        batch = kind.batch(encoded, indices, run.source_tokenizer, run.target_tokenizer, run.framing, generator=generator)
        batch = batch.to(device)
        logits = model_outputs(model, batch)
        total_loss += cross_entropy(logits, batch.targets).item() * batch.n_targets
        scored = batch.targets != IGNORE
        correct += int((logits.argmax(-1)[scored] == batch.targets[scored]).sum())
        total += batch.n_targets
    total_loss, total, correct = all_reduce_sum([total_loss, float(total), float(correct)], world, device)
    loss = total_loss / max(total, 1)
    metrics = {"loss": loss, kind.accuracy_name: correct / max(total, 1)}
    if kind.perplexity:
        metrics["perplexity"] = math.exp(min(loss, 50.0))
    return metrics


def evaluate(
    run: Run, encoded: Encoded, examples: list, batch_size: int, device, decode_limit: int | None = None,
    world: World = World(),
) -> dict:
    """All metrics of the run's kind on one encoded split."""
    metrics = teacher_forced(run, encoded, batch_size, device, world)
    metrics.update(KINDS[encoded.kind].predicted_metrics(run, encoded, examples, batch_size, device, decode_limit, world))
    return metrics
