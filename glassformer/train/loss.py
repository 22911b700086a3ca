"""The training objective of each kind: cross-entropy over the scored positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.tasks.qa import span_logits
from glassformer.train.batches import IGNORE, Batch


def model_outputs(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Logits of the model for a batch: [B, T, V] (tokens), [B, n_labels] (classification),
    [B, T, n_labels] (tagging) or [B, 2, T] (answer spans)."""
    inputs = batch.inputs
    if "src" in inputs:
        return model(inputs["src"], inputs["tgt"])
    if "shifted" in inputs:  # answer spans, read as the model's family reads a pair
        return span_logits(model, inputs["ids"], inputs["segments"], inputs["shifted"])
    if "segments" in inputs:
        return model(inputs["ids"], segments=inputs["segments"])
    return model(inputs["ids"])


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over positions whose target is not IGNORE (computed in fp32)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
        ignore_index=IGNORE, label_smoothing=label_smoothing,
    )
