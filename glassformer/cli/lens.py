"""`glassformer lens`: the logit lens, what the model would answer after each layer."""

from __future__ import annotations

import argparse
import json

import torch

from glassformer.cli._touch import (
    greedy_output, kind_of, kinds_where, make_case, model_flag, open_run, output_tokenizer,
)
from glassformer.errors import UserError
from glassformer.inspect.subject import token_labels


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lens", help="the logit lens: the top tokens read from the residual stream after each layer",
        description="Read the residual stream after the embeddings and after each layer through the final "
        "LayerNorm and the output projection, as if the model stopped there, and print the top tokens at each "
        "position (the decoder's positions for a seq2seq run; the last row is the model's own prediction).",
    )
    model_flag(p)
    p.add_argument("text", help="a prompt, a source sentence, or a text for a masked-LM")
    p.add_argument("--target", help="seq2seq: the decoder's input after <start> (default: the model's greedy output)")
    p.add_argument("--top", type=int, default=1, metavar="K",
                   help="tokens shown per cell (default 1, with its probability)")
    p.set_defaults(func=lens_command)


def lens_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.lens import logit_lens

    run = open_run(args.model)
    kind = kind_of(run)
    if kind.predicts is None:
        raise UserError(f"the logit lens reads a vocabulary; a {run.kind} run's head has labels "
                        f"(it reads runs of kind {kinds_where(lambda k: k.predicts)})")
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    target = args.target
    if kind.target_prefix and target is None:
        target = greedy_output(run, make_case(run, args.text, "", read=False), 20)
    case = make_case(run, args.text, target, read=False)  # every position is read: a <mask> is optional
    probs = torch.softmax(logit_lens(run.model, *case.inputs)[:, 0].float(), dim=-1)  # [L + 1, T, V]
    top = probs.topk(min(args.top, probs.size(-1)), dim=-1)
    tok = output_tokenizer(run)
    rows = ["embeddings"] + [f"layer {i}" for i in range(probs.size(0) - 1)]
    cells = [[[(token_labels(tok, [int(i)])[0], float(p)) for i, p in zip(ids, ps)]
              for ids, ps in zip(top.indices[r], top.values[r])] for r in range(len(rows))]
    if args.json:
        print(json.dumps({
            "model": str(args.model), "kind": run.kind, "positions": case.tokens,
            "rows": [{"after": name, "top": [[{"token": t, "p": p} for t, p in cell] for cell in row]}
                     for name, row in zip(rows, cells)],
        }, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.model}: {run.kind}; the {kind.predicts} read after each layer (columns: input positions)")
    text = [[(f"{cell[0][0]} {cell[0][1]:.2f}" if args.top == 1 else "/".join(t for t, _ in cell)) for cell in row]
            for row in cells]
    width = [max(len(case.tokens[c]), *(len(row[c]) for row in text)) for c in range(len(case.tokens))]
    first = max(len(r) for r in rows)
    print((" " * first + "  " + "  ".join(t.ljust(w) for t, w in zip(case.tokens, width))).rstrip())
    for name, row in zip(rows, text):
        print(name.ljust(first) + "  " + "  ".join(c.ljust(w) for c, w in zip(row, width)).rstrip())
    return 0

