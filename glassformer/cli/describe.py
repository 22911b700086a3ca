"""`glassformer describe`: a preset's configuration and its exact parameter count."""

from __future__ import annotations

import argparse

from glassformer.config import PRESETS, get_preset
from glassformer.models import build_model, count_parameters
from glassformer.cli._numbers import COUNT


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "describe", help="print a preset's configuration and parameter count",
        description="Build a preset (random weights) and print its configuration and parameter count.",
    )
    parser.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument("--vocab-size", type=COUNT, help="override the vocabulary size")
    parser.set_defaults(func=describe)


def describe(args: argparse.Namespace) -> int:
    config = get_preset(args.preset)
    if args.vocab_size is not None:
        config = config.replace(vocab_size=args.vocab_size)
    model = build_model(config, init=False)
    print(f"preset: {args.preset}")
    for key, value in config.to_dict().items():
        print(f"  {key}: {value}")
    print(f"  d_head: {config.d_head}")
    print(f"parameters: {count_parameters(model):,}")
    return 0
