"""The optimiser: Adam (the paper's) or AdamW over the trainable parameters."""

from __future__ import annotations

import importlib
import sys
import threading

import torch
from torch import nn

from glassformer.train.config import TrainConfig
from glassformer.train.fine_tune import is_head


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam(W) over the trainable parameters: the head at the scheduled rate, the body scaled.

    Each group's "scale" multiplies the schedule's rate at every step; the rate itself starts at 0.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not is_head(n)], "scale": config.body_lr_scale},
        {"params": [p for n, p in named if is_head(n)], "scale": 1.0},
    ]
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(
        [g for g in groups if g["params"]], lr=0.0, betas=(config.beta1, config.beta2), eps=config.eps,
        weight_decay=config.weight_decay,
    )


def import_in_background() -> None:
    """Start importing what torch's first optimizer imports (torch._dynamo: about 2 s of Python) in a
    thread, to run while the caller does work that releases the GIL in a few long calls (numpy, torch);
    `make_optimizer` then finds it done, or waits for the rest. The import touches no random state.

    Work that releases the GIL in many short calls (hashing a file in blocks) is slowed by it
    instead: each call waits up to the switch interval (5 ms) for the GIL back."""
    if "torch._dynamo" not in sys.modules:
        threading.Thread(target=importlib.import_module, args=("torch._dynamo",), name="import torch._dynamo",
                         daemon=True).start()
