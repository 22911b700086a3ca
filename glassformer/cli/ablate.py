"""`glassformer ablate`: take heads, feed-forward networks or layers out of a model and see what changes."""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack

import torch

from glassformer.cli._touch import (
    Case, answer_id, answer_label, greedy_output, kind_of, make_case, model_flag, open_run, read_logits,
)
from glassformer.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="take heads, feed-forward networks or layers out and print how the answer changes",
        description="Run TEXT through a model twice, as it is and with the named parts ablated, and print the "
        "answer's probability and its logit difference to a wrong answer before and after (the next token of a "
        "language model or translation, the token at <mask>, the label of a classifier), and for a language "
        "model or translation the greedy output before and after. Parts: --head L.H (the decoder's "
        "self-attention, or the encoder's in an encoder-only model; 'cross.L.H' and 'encoder.L.H' name an "
        "encoder-decoder's others), --ffn L, --layer L (both take an 'encoder.' or 'decoder.' prefix).",
    )
    model_flag(p)
    p.add_argument("text", help="the input: a prompt, a source sentence, a text with one <mask>, a text to classify")
    p.add_argument("--head", action="append", default=[], metavar="L.H", help="one head (repeatable)")
    p.add_argument("--ffn", action="append", default=[], metavar="L", help="one feed-forward network (repeatable)")
    p.add_argument("--layer", action="append", default=[], metavar="L", help="one whole layer (repeatable)")
    p.add_argument("--how", choices=("zero", "mean", "resample"), default="zero",
                   help="replace with zeros (default), the mean over --reference texts, or a --reference text's values")
    p.add_argument("--reference", action="append", default=[], metavar="TEXT",
                   help="reference input for mean or resample ablation (repeatable; all the same length in tokens)")
    p.add_argument("--target", help="seq2seq: the translation so far; the answer is the token after it (default: none)")
    p.add_argument("--answer", help="the correct answer (token or label); default: the model's own first choice")
    p.add_argument("--wrong", help="the wrong answer to compare with; default: the model's second choice")
    p.add_argument("--max-new-tokens", type=int, default=20, help="longest greedy output shown (default 20)")
    p.set_defaults(func=ablate_command)


def parse_part(model, spec: str, what: str):
    """(label, Part) for one --head / --ffn / --layer value."""
    from glassformer.inspect.ablate import feedforward, head, layer
    from glassformer.inspect.patch import default_side

    flag = f"--{what}"
    first, _, rest = spec.partition(".")
    side, rest = (first, rest) if first in ("encoder", "decoder", "cross") else (default_side(model), spec)
    if side == "cross" and what != "head":
        raise UserError(f"{flag} {spec}: 'cross.' names a cross-attention head; use decoder.L for the layer")
    attention = "cross_attn" if side == "cross" else "self_attn"
    stack_name = "decoder" if side == "cross" else side
    stack = getattr(model, stack_name, None)
    if stack is None or getattr(stack.layers[0], attention, None) is None:
        raise UserError(f"{flag} {spec}: this {model.config.family} model has no {side} side")
    numbers = rest.split(".")
    expected = 2 if what == "head" else 1
    if len(numbers) != expected or not all(n.isdigit() for n in numbers):
        form = "L.H, e.g. 1.2" if what == "head" else "L, e.g. 1"
        raise UserError(f"{flag} takes {form} (optionally prefixed by encoder., decoder. or cross.); got {spec!r}")
    index = int(numbers[0])
    if index >= len(stack.layers):
        raise UserError(f"{flag} {spec}: layer {index} does not exist; "
                        f"the {stack_name} has layers 0-{len(stack.layers) - 1}")
    path = f"{stack_name}.layers.{index}"
    if what == "head":
        h = int(numbers[1])
        if h >= model.config.n_heads:
            raise UserError(f"{flag} {spec}: head {h} does not exist; "
                            f"each attention has heads 0-{model.config.n_heads - 1}")
        return f"{path}.{attention} head {h}", head(f"{path}.{attention}", h)
    if what == "ffn":
        return f"{path}.ffn", feedforward(f"{path}.ffn")
    return path, layer(model, path)


def _batch(cases: list[Case], what: str) -> tuple[torch.Tensor, ...]:
    shapes = {tuple(tuple(t.shape) for t in c.inputs) for c in cases}
    if len(shapes) != 1:
        raise UserError(f"{what} must all be the same length in tokens; got lengths "
                        f"{', '.join(str(s[0][1]) for s in sorted(shapes))}")
    return tuple(torch.cat(tensors) for tensors in zip(*(c.inputs for c in cases)))


def _reading(logits: torch.Tensor, answer: int, wrong: int) -> dict:
    probs = torch.softmax(logits.float(), dim=-1)
    return {"p_answer": float(probs[answer]), "logit_difference": float(logits[answer] - logits[wrong]),
            "top": int(logits.argmax()), "p_top": float(probs.max())}


def ablate_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.ablate import ablate

    run = open_run(args.model)
    model = run.model
    case = make_case(run, args.text, args.target)
    specs = [(s, "head") for s in args.head] + [(s, "ffn") for s in args.ffn] + [(s, "layer") for s in args.layer]
    if not specs:
        raise UserError("name at least one part to ablate: --head L.H, --ffn L or --layer L")
    parts = [parse_part(model, spec, what) for spec, what in specs]
    reference = None
    if args.how != "zero":
        if not args.reference:
            raise UserError(f"--how {args.how} needs --reference TEXT (inputs to take the values from)")
        refs = [make_case(run, text, args.target, what="a --reference text", read=False) for text in args.reference]
        if args.how == "resample":
            refs = refs[:1] * case.inputs[0].size(0)
            if [tuple(t.shape) for t in refs[0].inputs] != [tuple(t.shape) for t in case.inputs]:
                raise UserError(f"resample ablation needs a --reference text as long as TEXT in tokens "
                                f"({case.inputs[0].size(1)}); it has {refs[0].inputs[0].size(1)}")
        ref_inputs = _batch(refs, "the --reference texts")
        reference = lambda: model(*ref_inputs)  # noqa: E731
    with torch.no_grad():
        before_logits = read_logits(run, model(*case.inputs), case)
    order = before_logits.argsort(descending=True).tolist()
    answer = answer_id(run, args.answer, "--answer") if args.answer else order[0]
    wrong = answer_id(run, args.wrong, "--wrong") if args.wrong else (order[1] if order[0] == answer else order[0])
    if answer == wrong:
        raise UserError("--answer and --wrong name the same token")
    kind = kind_of(run)
    decodes = kind.decodes  # a continuation or translation is shown before and after
    before_text = greedy_output(run, case, args.max_new_tokens) if decodes else None
    with ExitStack() as stack, torch.no_grad():
        for _, part in parts:
            stack.enter_context(ablate(model, part, args.how, reference))
        after_logits = read_logits(run, model(*case.inputs), case)
        after_text = greedy_output(run, case, args.max_new_tokens) if decodes and args.how != "resample" else None
    before, after = _reading(before_logits, answer, wrong), _reading(after_logits, answer, wrong)
    names = [label for label, _ in parts]
    if args.json:
        print(json.dumps({
            "model": str(args.model), "kind": run.kind, "text": args.text, "ablated": names, "how": args.how,
            "answer": answer_label(run, answer), "wrong": answer_label(run, wrong),
            "before": {**before, "top": answer_label(run, before["top"]), "output": before_text},
            "after": {**after, "top": answer_label(run, after["top"]), "output": after_text},
        }, indent=2, ensure_ascii=False))
        return 0
    a, w = answer_label(run, answer), answer_label(run, wrong)
    print(f"{args.model}: {run.kind}, {run.config.family}; reading the {kind.answer}")
    print(f"ablated ({args.how}): {', '.join(names)}")
    rows = [("", "before", "after"),
            (f"p({a})", f"{before['p_answer']:.4f}", f"{after['p_answer']:.4f}"),
            (f"logit {a} - {w}", f"{before['logit_difference']:.3f}", f"{after['logit_difference']:.3f}"),
            ("first choice", f"{answer_label(run, before['top'])} ({before['p_top']:.2f})",
             f"{answer_label(run, after['top'])} ({after['p_top']:.2f})")]
    if decodes:
        rows.append(("greedy output", before_text, after_text if after_text is not None else "(not decoded: resample)"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip())
    return 0
