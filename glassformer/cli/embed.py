"""`glassformer embed`: sentence embeddings from an encoder, as sentence-transformers makes them.

An embedding is the mean of the encoder's last hidden states over a text's tokens (its [CLS]
and [SEP] included, padding excluded), scaled to unit length: MiniLM sentence embedders
(all-MiniLM-L6-v2) are used exactly this way. --pooling cls takes the first token instead.
"""

from __future__ import annotations

import argparse

import torch

from glassformer.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed", help="print sentence embeddings (mean-pooled, unit length)",
        description="Print one unit-length sentence embedding per text (mean of the encoder's last hidden "
        "states over the text's tokens), or with --similarity the matrix of their cosine similarities.",
    )
    parser.add_argument(
        "--model", required=True, help="run folder of an encoder (kind encode/mlm/classify/tag) or a Hugging Face BERT folder"
    )
    parser.add_argument("text", nargs="+", help="texts to embed")
    parser.add_argument("--similarity", action="store_true", help="print the cosine-similarity matrix instead")
    parser.add_argument(
        "--pooling", choices=("mean", "cls"), default="mean", help="mean of the tokens (default) or the first token"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    parser.set_defaults(func=embed_command)


def embed_command(args: argparse.Namespace) -> int:
    from glassformer.tasks.encode import sentence_embeddings
    from glassformer.load import load_model

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {args.device!r} (expected cpu, cuda, cuda:N or auto)") from None
    empty = [i for i, text in enumerate(args.text, 1) if not text.strip()]
    if empty:
        raise UserError(f"text {empty[0]} of {len(args.text)} is empty; every text needs at least one word")
    run = load_model(args.model, device=device)
    embeddings = sentence_embeddings(run, args.text, args.pooling)
    if args.similarity:
        for row in embeddings @ embeddings.T:
            print("  ".join(f"{x:6.3f}" for x in row.tolist()))
    else:
        for row in embeddings:
            print(" ".join(f"{x:.6f}" for x in row.tolist()))
    return 0
