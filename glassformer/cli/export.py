"""`glassformer export`: write a model as a Hugging Face folder (GPT-2, BERT, BART or the LLaMA family) for
`transformers`."""

from __future__ import annotations

import argparse
from pathlib import Path

from glassformer.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model as a Hugging Face folder",
        description="Write a run folder's model (or a Hugging Face folder read by glassformer) in the Hugging "
        "Face layout: decoder-only as GPT-2 (with rotary positions as Llama, Qwen2, Mistral or Qwen3, whichever "
        "expresses it), encoder-only as BERT, encoder-decoder as BART.",
    )
    parser.add_argument("--model", required=True, help="run folder or Hugging Face folder")
    parser.add_argument("--out", required=True, help="folder to write (created if needed)")
    parser.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    import json

    from glassformer.interop import export_hf
    from glassformer.run_folder import load_run

    source, out = Path(args.model), Path(args.out)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UserError(f"{out}: the output folder is the model folder itself; choose another --out")
    run = load_run(source)
    written = export_hf(run, out)
    model_type = json.loads((written / "config.json").read_text(encoding="utf-8"))["model_type"]
    print(f"wrote {out}: {model_type} model of kind {run.kind}")
    return 0
