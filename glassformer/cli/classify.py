"""`glassformer classify`: labels and probabilities for texts from a classification model."""

from __future__ import annotations

import argparse
import sys

from glassformer.errors import UserError
from glassformer.cli._numbers import COUNT


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="classify texts with a trained model",
                                   description="Print the most likely label of each text, with its probability.")
    parser.add_argument("--model", required=True, help="run folder (or Hugging Face folder) of a classifier")
    parser.add_argument("text", nargs="*", help="texts to classify (default: lines of standard input)")
    parser.add_argument("--top", type=COUNT, default=1, help="labels to show per text")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=classify_command)


def read_inputs(texts: list[str]) -> list[str]:
    """The texts given, or the non-blank lines of standard input; an empty input is an error."""
    if not texts and not sys.stdin.isatty():
        texts = [line.rstrip("\n") for line in sys.stdin]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError("no input text (give TEXT arguments or lines on standard input)")
    return texts


def classify_command(args: argparse.Namespace) -> int:
    from glassformer.tasks.classify import classify_texts
    from glassformer.load import load_model
    from glassformer.train.build import pick_device

    device = pick_device(args.device)
    run = load_model(args.model, device=device)
    texts = read_inputs(args.text)
    for probs in classify_texts(run, texts, device):
        print("  ".join(f"{label} {p:.3f}" for label, p in list(probs.items())[: args.top]))
    return 0
