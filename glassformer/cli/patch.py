"""`glassformer patch`: which layers, positions and heads carry the difference between a clean and a corrupted text."""

from __future__ import annotations

import argparse
import json

import torch

from glassformer.cli._touch import answer_id, answer_label, kind_of, make_case, model_flag, open_run, read_logits
from glassformer.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "patch", help="activation patching: which layers, positions and heads restore the clean answer",
        description="Run the --clean and the --corrupt text (the same length in tokens), then the corrupted one "
        "again with one activation at a time taken from the clean run: the residual stream at each layer and "
        "position, and each head's output. Prints the fraction of the logit difference between --answer and "
        "--wrong that each patch restores (1: all of it, 0: none) as a layer x position and a layer x head grid.",
    )
    model_flag(p)
    p.add_argument("--clean", required=True, metavar="TEXT", help="the input the model answers correctly")
    p.add_argument("--corrupt", required=True, metavar="TEXT", help="the same input with a few tokens changed")
    p.add_argument("--answer", help="the clean answer (token or label); default: the model's choice on --clean")
    p.add_argument("--wrong",
                   help="the wrong answer; default: the model's choice on --corrupt (else its second on --clean)")
    p.add_argument("--target", help="seq2seq: the translation so far; the answer is the token after it (default: none)")
    p.add_argument("--side", choices=("encoder", "decoder"),
                   help="an encoder-decoder: whose residual stream to patch (default: seq2seq's encoder, where the "
                   "texts differ; a classifier's decoder, whose output it reads)")
    p.add_argument("--estimate", action="store_true",
                   help="attribution patching: estimate every patch from gradients (one backward pass) instead")
    p.set_defaults(func=patch_command)


def _labels(clean: list[str], corrupt: list[str]) -> list[str]:
    return [a if a == b else f"{a}/{b}" for a, b in zip(clean, corrupt)]


def _grid(title: str, rows: list[str], cols: list[str], values: torch.Tensor) -> str:
    width = max(6, *(len(c) for c in cols))
    first = max(len(r) for r in rows)
    lines = [title, " " * first + "  " + "  ".join(c.rjust(width) for c in cols)]
    for name, row in zip(rows, values.tolist()):
        lines.append(name.ljust(first) + "  " + "  ".join(f"{v:+.2f}".rjust(width) for v in row))
    return "\n".join(lines)


def patch_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.gradients import attribution_patching
    from glassformer.inspect.patch import activation_patching, default_side, logit_difference

    run = open_run(args.model)
    model = run.model
    if args.side and run.config.family != "encoder-decoder":
        raise UserError("--side is for seq2seq runs and other encoder-decoder models (they have two residual streams)")
    clean = make_case(run, args.clean, args.target, what="--clean")
    corrupt = make_case(run, args.corrupt, args.target, what="--corrupt")
    lengths = clean.inputs[0].size(1), corrupt.inputs[0].size(1)
    if lengths[0] != lengths[1]:
        raise UserError(f"--clean is {lengths[0]} tokens and --corrupt {lengths[1]}; patching needs the same length")
    if clean.position != corrupt.position:
        raise UserError("the <mask> must stand at the same position in --clean and --corrupt")
    with torch.no_grad():
        clean_logits = read_logits(run, model(*clean.inputs), clean)
        corrupt_logits = read_logits(run, model(*corrupt.inputs), corrupt)
    answer = answer_id(run, args.answer, "--answer") if args.answer else int(clean_logits.argmax())
    if args.wrong:
        wrong = answer_id(run, args.wrong, "--wrong")
    else:
        wrong = int(corrupt_logits.argmax())
        if wrong == answer:
            wrong = int(clean_logits.argsort(descending=True)[1])
    if answer == wrong:
        raise UserError("--answer and --wrong name the same token")
    side = args.side or ("encoder" if kind_of(run).target_prefix else default_side(model))
    patching = attribution_patching if args.estimate else activation_patching
    result = patching(model, clean.inputs, corrupt.inputs, logit_difference(answer, wrong, clean.position), side)
    cols = _labels(clean.labels(side), corrupt.labels(side))
    layer_rows = ["embeddings"] + [f"layer {i}" for i in range(len(result.points) - 1)]
    a, w = answer_label(run, answer), answer_label(run, wrong)
    if args.json:
        print(json.dumps({
            "model": str(args.model), "kind": run.kind, "answer": a, "wrong": w,
            "method": "attribution patching" if args.estimate else "activation patching",
            "clean_logit_difference": result.clean, "corrupt_logit_difference": result.corrupt,
            "side": side,
            "positions": cols, "points": result.points, "residual": result.residual.tolist(),
            "heads": {kind: grid.tolist() for kind, grid in result.heads.items()},
        }, indent=2, ensure_ascii=False))
        return 0
    method = "estimated from gradients (attribution patching)" if args.estimate else "activation patching"
    print(f"{args.model}: {run.kind}; logit {a} - {w}: clean {result.clean:.3f}, corrupt {result.corrupt:.3f}")
    print(f"fraction of it restored by each patch, {method}\n")
    print(_grid(f"residual stream ({side}), rows: after each layer, columns: positions", layer_rows, cols,
                result.residual))
    for kind, grid in result.heads.items():
        heads = [f"head {h}" for h in range(grid.size(1))]
        print("\n" + _grid(f"{kind} heads, rows: layers", [f"layer {i}" for i in range(grid.size(0))], heads, grid))
    return 0
