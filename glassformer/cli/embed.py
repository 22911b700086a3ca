"""`glassformer embed`: sentence embeddings from an encoder, as sentence-transformers makes them,
or from a language model's decoder.

An embedding is the mean of the encoder's last hidden states over a text's tokens (its [CLS]
and [SEP] included, padding excluded), scaled to unit length: MiniLM sentence embedders
(all-MiniLM-L6-v2) are used exactly this way. --pooling cls takes the first token instead, and
--pooling last the last one. A decoder-only model reads the text as a prompt (framed as for
`generate`: LLaMA's <s> first, nothing appended) and its final hidden states (after the final
norm, before the LM head) are pooled the same way; under the causal mask only the last token has
seen the whole text, so --pooling last is the usual choice there (mean stays the default). An
encoder-decoder's encoder output is pooled, its source framed as `translate` frames it.
"""

from __future__ import annotations

import argparse

import torch

from glassformer.errors import UserError

POOLINGS = ("mean", "cls", "last")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed", help="print sentence embeddings (mean-pooled, unit length)",
        description="Print one unit-length sentence embedding per text (mean of the encoder's last hidden "
        "states over the text's tokens), or with --similarity the matrix of their cosine similarities. "
        "An encoder-decoder's encoder output is pooled the same way. "
        "A language model (decoder-only) reads the text as a prompt and its decoder's final hidden states "
        "(after the final norm) are pooled: mean by default, --pooling last for the last token, the only "
        "one that has seen the whole text.",
    )
    parser.add_argument(
        "--model", required=True,
        help="run folder or Hugging Face folder: an encoder, an encoder-decoder (its encoder) or a decoder-only model"
    )
    parser.add_argument("text", nargs="+", help="texts to embed")
    parser.add_argument("--similarity", action="store_true", help="print the cosine-similarity matrix instead")
    parser.add_argument(
        "--pooling", choices=POOLINGS, default="mean",
        help="mean of the tokens (default), the first token (cls) or the last one (last: a decoder's usual choice)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    parser.set_defaults(func=embed_command)


def embed_command(args: argparse.Namespace) -> int:
    from glassformer.load import load_model
    from glassformer.tasks.encode import sentence_embeddings

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
