"""`glassformer export`: write a model as a Hugging Face folder for `transformers` (see interop.hf_export)."""

from __future__ import annotations

import argparse
from pathlib import Path

from glassformer.cli._numbers import POSITIVE
from glassformer.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model as a Hugging Face folder",
        description="Write a run folder's model (or a Hugging Face folder read by glassformer) in the Hugging "
        "Face layout: decoder-only as GPT-2 (with rotary positions as Llama, Qwen2, Mistral or Qwen3, whichever "
        "expresses it), encoder-only as BERT, encoder-decoder as BART (embedding LayerNorm), Blenderbot "
        "(pre-norm) or Marian (post-norm, sinusoidal positions); a folder read from transformers goes back to "
        "its own class.",
    )
    parser.add_argument("--model", required=True, help="run folder or Hugging Face folder")
    parser.add_argument("--out", required=True, help="folder to write: missing or empty (created if needed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may be a folder that is not empty: replace the Hugging Face files there")
    parser.add_argument("--dtype", choices=("keep", "float32", "bfloat16", "float16"), default="keep",
                        help="weights' type: keep the model's (a bf16 Hugging Face folder stays bf16), or cast")
    parser.add_argument("--max-shard-size", type=POSITIVE, metavar="MB", default=None,
                        help="split the weights into shards of at most MB megabytes, with an index (as transformers does)")
    parser.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from glassformer.folder_guard import EXPORT_ENTRIES, FolderLock, check_output_folder
    from glassformer.interop import export_hf
    from glassformer.interop.hf_export import export_family
    from glassformer.load import load_model

    source, out = Path(args.model), Path(args.out)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UserError(f"{out}: the output folder is the model folder itself; choose another --out")
    run = load_model(source, dtype="keep")
    check_output_folder(out, "--out", overwrite=args.overwrite, entries=EXPORT_ENTRIES)
    shard = None if args.max_shard_size is None else int(args.max_shard_size * 1e6)
    with FolderLock(out):
        export_hf(run, out, dtype=args.dtype, max_shard_size=shard)
    print(f"wrote {out}: {export_family(run.config, run.kind, run.meta).MODEL_TYPE} model of kind {run.kind}")
    return 0
