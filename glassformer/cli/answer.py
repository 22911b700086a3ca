"""`glassformer answer`: the span of a context that answers a question (extractive QA)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("answer", help="answer a question from a context with a QA model",
                                   description="Print the span of --context that best answers QUESTION.")
    parser.add_argument("--model", required=True, help="run folder of a question-answering model")
    parser.add_argument("--context", required=True, help="the text to answer from")
    parser.add_argument("question", help="the question")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=answer_command)


def answer_command(args: argparse.Namespace) -> int:
    from glassformer.errors import UserError
    from glassformer.load import load_model
    from glassformer.tasks.qa import answer_questions
    from glassformer.train.build import pick_device

    device = pick_device(args.device)
    run = load_model(args.model, device=device)
    if run.kind != "qa":
        raise UserError(f"{args.model} is a {run.kind!r} model; answer needs a 'qa' model")
    if not args.context.strip() or not args.question.strip():
        raise UserError("both --context and QUESTION must be non-empty")
    print(answer_questions(run.model, run.tokenizer, [args.question], [args.context], run.config.max_len,
                           run.framing, device=device)[0])
    return 0
