"""`glassformer export`: write a model as a Hugging Face folder (GPT-2, BERT or BART) for `transformers`."""

from __future__ import annotations

import argparse
from pathlib import Path

from glassformer.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model as a Hugging Face folder",
        description="Write a run folder's model (or a Hugging Face folder read by glassformer) in the Hugging "
        "Face layout: decoder-only as GPT-2, encoder-only as BERT, encoder-decoder as BART.",
    )
    parser.add_argument("--model", required=True, help="run folder or Hugging Face folder")
    parser.add_argument("--out", required=True, help="folder to write: missing or empty (created if needed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may be a folder that is not empty: replace the Hugging Face files there")
    parser.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from glassformer.folder_guard import EXPORT_ENTRIES, FolderLock, check_output_folder
    from glassformer.interop import export_hf
    from glassformer.interop.hf_export import FAMILY_OF
    from glassformer.run_folder import load_run

    source, out = Path(args.model), Path(args.out)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UserError(f"{out}: the output folder is the model folder itself; choose another --out")
    run = load_run(source)
    check_output_folder(out, "--out", overwrite=args.overwrite, entries=EXPORT_ENTRIES)
    with FolderLock(out):
        export_hf(run, out)
    print(f"wrote {out}: {FAMILY_OF[run.config.family]} model of kind {run.kind}")
    return 0
