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


def sentence_embeddings(run, texts: list[str], pooling: str = "mean") -> torch.Tensor:
    """Unit-length embeddings [N, d_model] of texts, in order, from a run of any family.

    Args:
        run: a Run of any family (any head; the head is not used): an encoder-decoder's encoder
            output is pooled, a decoder-only model's final hidden states.
        pooling: "mean" over the non-pad tokens, "cls" for the first token, "last" for the last one.
    """
    from glassformer.framing import Framing, sequence_ids, source_ids

    decoder = run.config.family == "decoder-only"
    framing = Framing.from_meta(run.meta)
    if run.config.family == "encoder-decoder":  # the encoder's output, the source framed as for translate
        rows = [source_ids(run.tokenizer, text, framing) for text in texts]
    else:
        rows = [sequence_ids(run.tokenizer, text, framing, end=not decoder) for text in texts]
    device = next(run.model.parameters()).device
    ids = torch.full((len(rows), max(map(len, rows))), run.tokenizer.pad_id, dtype=torch.long, device=device)
    real = torch.zeros(ids.shape, dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        real[i, : len(row)] = True
    with torch.no_grad():
        encode = run.model.hidden_states if decoder else run.model.encode
        hidden = encode(ids, real[:, None, None, :])  # [N, T, d_model]
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "last":
        pooled = hidden[torch.arange(len(rows)), real.sum(1) - 1]
    else:
        weights = real.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()


def embed_command(args: argparse.Namespace) -> int:
    from glassformer.run_folder import load_run

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
    run = load_run(args.model, device=device)
    embeddings = sentence_embeddings(run, args.text, args.pooling)
    if args.similarity:
        for row in embeddings @ embeddings.T:
            print("  ".join(f"{x:6.3f}" for x in row.tolist()))
    else:
        for row in embeddings:
            print(" ".join(f"{x:.6f}" for x in row.tolist()))
    return 0
