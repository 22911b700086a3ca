"""`glassformer tag`: the named entities a token-classification model finds in a text."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("tag", help="find named entities with a tagging model",
                                   description="Tag each word (BIO) and print the entities found; a model whose "
                                   "labels are not BIO tags (an imported token classifier) prints each word's label.")
    parser.add_argument("--model", required=True, help="run folder of a tagging model")
    parser.add_argument("text", nargs="*", help="texts (default: lines of standard input)")
    parser.add_argument("--tags", action="store_true", help="also print every word with its tag")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=tag_command)


def tag_command(args: argparse.Namespace) -> int:
    from glassformer.cli.classify import read_inputs
    from glassformer.errors import UserError
    from glassformer.load import load_model
    from glassformer.text import split_words
    from glassformer.tasks.tag import entity_spans, predict_tags
    from glassformer.train.build import pick_device

    device = pick_device(args.device)
    run = load_model(args.model, device=device)
    if run.kind != "tag":
        raise UserError(f"{args.model} is a {run.kind!r} model; tag needs a 'tag' model")
    sentences = [split_words(text) for text in read_inputs(args.text)]
    bio = all(label == "O" or label[:2] in ("B-", "I-") for label in run.labels)
    for words, tags in zip(sentences, predict_tags(run.model, run.tokenizer, run.labels, sentences,
                                                    run.config.max_len, run.framing, device=device)):
        if args.tags or not bio:
            print(" ".join(f"{w}/{t}" for w, t in zip(words, tags)))
        if not bio:
            continue
        entities = [f"{' '.join(words[start:end])} ({kind})" for kind, start, end in entity_spans(tags)]
        print("entities: " + ("; ".join(entities) if entities else "none"))
    return 0
