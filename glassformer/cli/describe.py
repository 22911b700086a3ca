"""`glassformer describe`: a preset's configuration and its exact parameter count."""

from __future__ import annotations

import argparse

import torch

from glassformer.config import PRESETS, get_preset
from glassformer.models import build_model, count_parameters
from glassformer.nn.positional_encoding import SinusoidalPositions
from glassformer.cli._numbers import COUNT


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "describe", help="print a preset's configuration and parameter count",
        description="Print a preset's configuration and parameter count (counted on PyTorch's meta device: "
        "no weights are allocated, so an 8B model describes on a laptop).",
    )
    parser.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument("--vocab-size", type=COUNT, help="override the vocabulary size")
    parser.set_defaults(func=describe)


def describe(args: argparse.Namespace) -> int:
    config = get_preset(args.preset)
    if args.vocab_size is not None:
        config = config.replace(vocab_size=args.vocab_size)
    with torch.device("meta"):  # shapes only: describing a large model allocates nothing
        model = build_model(config, init=False)
    print(f"preset: {args.preset}")
    for key, value in config.to_dict().items():
        print(f"  {key}: {value}")
    print(f"  d_head: {config.d_head}")
    count = count_parameters(model)
    print(f"parameters: {count:,}")
    # transformers keeps Marian's sinusoids as (frozen) weights and counts them; we compute them.
    fixed = sum(m.table.numel() for m in model.modules() if isinstance(m, SinusoidalPositions))
    if fixed and config.family == "encoder-decoder":  # only Marian, an encoder-decoder, stores them
        print(f"with the fixed sinusoidal position tables (+{fixed:,}), as transformers counts Marian: {count + fixed:,}")
    return 0
