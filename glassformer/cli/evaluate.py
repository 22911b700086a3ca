"""`glassformer evaluate`: held-out metrics of a trained model."""

from __future__ import annotations

import argparse
from glassformer.cli._numbers import COUNT


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="metrics of a trained model on held-out data",
        description="Loss, perplexity, token accuracy, exact-match and BLEU (seq2seq) or accuracy (classify) "
        "on the run's test split, or on --data.",
    )
    parser.add_argument("--model", required=True, help="run folder")
    parser.add_argument("--data", help="a file of the run's kind (default: the run's own test split)")
    parser.add_argument("--split", default="test", choices=("valid", "test"), help="which held-out split (default test)")
    parser.add_argument("--batch-size", type=COUNT, default=64)
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    from glassformer.cli._output import format_metrics
    from glassformer.errors import UserError
    from glassformer.load import load_model
    from glassformer.tasks import KINDS
    from glassformer.train.config import TrainConfig
    from glassformer.train.evaluate import evaluate
    from glassformer.train.corpus import encoded_file
    from glassformer.train.corpus_source import uses_prepared_data
    from glassformer.train.setup import load_prepared_corpus, load_splits
    from glassformer.train.build import pick_device

    device = pick_device(args.device)
    run = load_model(args.model, device=device)
    train_config = TrainConfig.from_dict(run.meta["train"]) if "train" in run.meta else None
    from_training = train_config is not None and uses_prepared_data(train_config.data, train_config.kind)
    kind = KINDS[run.kind]
    encoded, examples = None, []
    if kind.prepared_text and args.data:  # text for a language model: through its prepared token file
        encoded = encoded_file(args.data, run.kind, run.source_tokenizer, run.config.max_len, run.framing)
    elif not args.data and from_training:  # the run's own held-out split, from its prepared corpus
        corpus = load_prepared_corpus(train_config, run.framing, run.source_tokenizer, target=run.target_tokenizer)
        corpus.open(run.config.max_len)
        encoded = corpus.encoded(args.split, run.config.max_len)
        examples = corpus.examples(args.split)
    elif args.data:
        if not kind.trainable:
            raise UserError(f"{args.model} is a {run.kind!r} model, which has no held-out data to evaluate on")
        examples = kind.read(args.data)
    elif train_config is not None:
        _, splits, _ = load_splits(train_config)
        examples = getattr(splits, args.split)
    else:
        raise UserError(f"{args.model} records no training data; give --data FILE")
    if encoded is None:
        encoded = kind.encode(examples, run.source_tokenizer, run.target_tokenizer, run.labels, run.config.max_len,
                              run.framing)
    if len(encoded) == 0:
        raise UserError("no example fits the model's maximum length")
    metrics = evaluate(run, encoded, examples, args.batch_size, device)
    print(f"{len(encoded)} examples" + (f" ({encoded.skipped} longer than max_len skipped)" if encoded.skipped else ""))
    print(format_metrics(metrics))
    return 0
