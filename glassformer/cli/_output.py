"""Printing shared by commands: metrics on one line, and examples side by side."""

from __future__ import annotations


def format_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if key in ("exact_match", "accuracy", "token_accuracy", "position_accuracy"):
            parts.append(f"{key} {100 * value:.1f}%")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def print_examples(run, examples: list, device) -> None:
    """A few held-out examples with the model's output beside the reference, as the run's kind shows them."""
    if not examples:
        return
    from glassformer.tasks import KINDS

    for line in KINDS[run.kind].example_lines(run, examples, device):
        print(line)
