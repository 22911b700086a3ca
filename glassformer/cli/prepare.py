"""`glassformer prepare`: tokenize a data file once into a memory-mapped token file, ahead of training."""

from __future__ import annotations

import argparse
import json

from glassformer.train.config import TOKENIZERS

# The trainable kinds (glassformer.tasks.TRAINABLE_KINDS, which imports torch: too slow for every command's start).
_KINDS = ("seq2seq", "lm", "mlm", "classify", "tag", "qa")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="tokenize a data file once, ahead of `train`",
        description="Split a data file as `train` will, train its tokenizer(s) on the training split and write every "
        "example's ids into a memory-mapped token file in the cache (GLASSFORMER_CACHE_DIR, else ~/.cache/glassformer), "
        "where `train --data FILE` with the same settings, `--resume` and `evaluate` find it. Prints the throughput.",
    )
    parser.add_argument("--data", help="the data file (text: one example per line)")
    parser.add_argument("--kind", default="lm", choices=_KINDS, help="how the file is read (default lm)")
    parser.add_argument("--preset", help="the model preset `train` will use (qa only: contexts are cut to its max_len; "
                                         "default the kind's own)")
    parser.add_argument("--separate-vocab", action="store_true", help="separate source and target vocabularies (seq2seq)")
    parser.add_argument("--tokenizer", default="word",
                        help=f"a tokenizer kind to train ({', '.join(TOKENIZERS)}; default word), a tokenizer JSON "
                             "file, or a run folder whose tokenizer to use")
    parser.add_argument("--vocab-size", type=int, help="vocabulary cap (word/char) or target size (bpe/wordpiece)")
    parser.add_argument("--lowercase", action="store_true", help="lowercase text before tokenising")
    parser.add_argument("--seed", type=int, default=0, help="the seed `train` will split with (default 0)")
    parser.add_argument("--valid-data", help="a held-out file, as `train --valid-data` takes it")
    parser.add_argument("--check", metavar="DIR", help="only check a prepared token folder (lengths and checksums)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.set_defaults(func=prepare_command)


def prepare_command(args: argparse.Namespace) -> int:
    import time

    from glassformer.data.prepared import open_store
    from glassformer.errors import UserError
    from glassformer.train.corpus import load_corpus

    if args.check:
        store = open_store(args.check)
        report = {"store": str(store.path), "examples": len(store), "tokens": store.n_tokens, "ok": True}
        print(json.dumps(report) if args.json else f"{store.path}: intact ({len(store):,} examples, {store.n_tokens:,} tokens)")
        return 0
    if not args.data:
        raise UserError("give --data FILE (or --check DIR)")
    tokenizer, kind, framing = _given_tokenizer(args.tokenizer)
    start = time.perf_counter()
    progress, log = not args.no_progress and not args.json, (lambda line: None) if args.json else print
    corpus = load_corpus(args.data, args.kind, args.seed, framing, args.valid_data, tokenizer[0] if tokenizer else None,
                         kind or "word", args.vocab_size, args.lowercase, progress, log,
                         tokenizer[1] if tokenizer else None, not args.separate_vocab)
    corpus.open(_max_len(args), progress, log)
    seconds = time.perf_counter() - start
    store = corpus.stores["train"]
    encoding = store.meta.get("seconds")  # set (in memory, not in meta.json) when written by this call
    megabytes = store.meta["source_bytes"] / 1e6
    report = {
        "store": str(store.path), "source": args.data, "examples": len(store), "tokens": store.n_tokens,
        "dtype": store.tokens.dtype.name, "vocab_size": corpus.tokenizer.vocab_size,
        "splits": {name: corpus.size(name) for name in ("train", "valid", "test")},
        "cached": encoding is None, "seconds": round(seconds, 3),
        "encode_seconds": None if encoding is None else round(encoding, 3),
        "encode_mb_per_s": None if encoding is None else round(megabytes / max(encoding, 1e-9), 2),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.data}: {len(store):,} examples, {store.n_tokens:,} tokens ({report['dtype']}, vocabulary "
          f"{corpus.tokenizer.vocab_size:,}); train/valid/test {report['splits']['train']:,}/"
          f"{report['splits']['valid']:,}/{report['splits']['test']:,}")
    if encoding is None:
        print(f"already prepared (checked in {seconds:.1f} s)")
    else:
        print(f"tokenized {megabytes:,.1f} MB in {encoding:.1f} s ({report['encode_mb_per_s']:,.1f} MB/s); "
              f"{seconds:.1f} s in all, with splitting and tokenizer training")
    print(f"token folder: {report['store']}")
    return 0


def _max_len(args: argparse.Namespace) -> int:
    """The max_len of the model `train` will build (it matters to question answering alone)."""
    from glassformer.config import get_preset
    from glassformer.tasks import KINDS

    return get_preset(args.preset or KINDS[args.kind].default_preset).max_len


def _given_tokenizer(name: str):
    """((source, target) tokenizers, None, framing) for a JSON file or run folder, (None, kind, framing) for a
    kind to train: a run folder's own framing, glassformer's for the others."""
    from pathlib import Path

    from glassformer.errors import UserError
    from glassformer.framing import Framing
    from glassformer.text import load_tokenizer

    if name in TOKENIZERS:
        return None, name, Framing()
    path = Path(name)
    if path.is_dir():
        from glassformer.load import load_model

        run = load_model(path, weights=False)
        return (run.source_tokenizer, run.target_tokenizer), None, run.framing
    if path.is_file():
        tokenizer = load_tokenizer(path)
        return (tokenizer, tokenizer), None, Framing()
    raise UserError(f"--tokenizer {name!r} is neither a tokenizer kind ({', '.join(TOKENIZERS)}) nor a file or run folder")
