"""`glassformer trace | explain | attention | report`: look inside a model."""

from __future__ import annotations

import argparse

import torch

from glassformer.cli._numbers import COUNT, NON_NEGATIVE_COUNT, POSITIVE, SEED, integer
from glassformer.config import PRESETS
from glassformer.errors import UserError
from glassformer.files import check_output_file


def _given_text(text: str | None) -> str | None:
    """The input text as given; an empty (or all-space) one is a mistake, not a request for the default."""
    if text is not None and not text.strip():
        raise UserError("the input text is empty; give a text, or leave it out for the default")
    return text


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help=f"a preset with random weights: {', '.join(PRESETS)}")
    parser.add_argument("--model", metavar="DIR", help="a run folder written by `glassformer train`")
    parser.add_argument("--seed", type=SEED, default=0, help="seed for random weights and random ids (default 0)")


def _layers(spec: str | None) -> list[int] | None | str:
    if spec is None or spec == "first":
        return None
    if spec == "all":
        return "all"
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--layers takes 'all', 'first' or layer numbers like 0,2; got {spec!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trace", help="print every tensor's shape, step by step, with named dimensions",
        description="Run a model once and print the shape of every activation in model order, "
        "with named dimensions and what happened at each step (article A's table).",
    )
    p.add_argument("text", nargs="?", help="an input text (else random ids, see --batch/--seq)")
    _model_flags(p)
    p.add_argument("--target", help="encoder-decoder: a target text fed to the decoder (default: just <start>)")
    p.add_argument("--batch", type=COUNT, default=1, metavar="B", help="random ids: batch size (default 1)")
    p.add_argument("--seq", type=COUNT, default=8, metavar="T", help="random ids: sequence length (default 8)")
    p.add_argument("--src-seq", type=COUNT, metavar="S", help="random ids: source length of an encoder-decoder (default T)")
    p.add_argument("--layers", metavar="SPEC", help="'first' (default: layer 0, the others folded), 'all', or numbers like 0,5")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=trace_command)

    p = subparsers.add_parser(
        "explain", help="article C's walk-through: every number of a toy translation, or of a real model (--model)",
        description="Build a word vocabulary and a width-6, two-head encoder-decoder, then print every "
        "matrix of one sentence's way through it: embeddings, positions, Q/K/V, per-head scores, "
        "softmax, add & norm, feed-forward, and the decoder's choices word by word. With --model DIR "
        "(a run folder or a Hugging Face folder), walk that model's own hook points on the text instead: "
        "each step with its named shape and the recorded tensor's first --cols columns (head 0 where "
        "there are heads), then what the model predicts.",
    )
    p.add_argument("text", nargs="?", help="the sentence to translate (default: article C's)")
    p.add_argument("--model", metavar="DIR",
                   help="walk a run folder or Hugging Face folder at its real size instead of the toy")
    p.add_argument("--cols", type=COUNT, default=8, help="--model: columns printed per tensor (default 8)")
    p.add_argument("--layers", metavar="SPEC",
                   help="--model: 'first' (default: layer 0, the others folded), 'all', or numbers like 0,5")
    p.add_argument("--corpus", metavar="FILE", help="source<TAB>target lines, or plain sentences (default: a few TV lines)")
    p.add_argument("--train", type=NON_NEGATIVE_COUNT, default=0, metavar="N", help="first train the toy for N Adam steps on its corpus")
    p.add_argument("--lr", type=POSITIVE, default=0.02, help="learning rate of --train (default 0.02)")
    p.add_argument("--d-model", type=COUNT, default=6, help="model width (default 6)")
    p.add_argument("--heads", type=COUNT, default=2, help="attention heads (default 2)")
    p.add_argument("--max-steps", type=COUNT, default=12, help="the most words to decode (default 12)")
    p.add_argument("--detail", default="last", help="decoder steps printed in full: last (default), all, none or a step number")
    p.add_argument("--top", type=COUNT, help="logits shown per step (default: all when the vocabulary has 40 or fewer)")
    p.add_argument("--precision", type=integer(0, 10), default=4, help="decimals printed (default 4)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for the weights and training (default 0)")
    p.set_defaults(func=explain_command)

    p = subparsers.add_parser(
        "attention", help="draw attention weights as a shaded grid in the terminal",
        description="Run a model on a text and draw its attention probabilities, queries down the side and keys across the top.",
    )
    p.add_argument("text", nargs="?", help="the input text")
    _model_flags(p)
    p.add_argument("--layer", type=NON_NEGATIVE_COUNT, default=0, help="layer (default 0)")
    p.add_argument("--head", type=NON_NEGATIVE_COUNT, help="head (default: every head)")
    p.add_argument("--kind", choices=("self", "decoder", "cross"), help="self (encoder), decoder (masked self) or cross; default: the model's first")
    p.add_argument("--target", help="encoder-decoder: a target text instead of greedy decoding")
    p.add_argument("--max-steps", type=COUNT, default=20, help="the most tokens to decode (default 20)")
    p.add_argument("--color", action="store_true", help="ANSI grey shades instead of block characters")
    p.add_argument("--values", action="store_true", help="also print the probabilities")
    p.add_argument("--export", metavar="FILE", help="also save every map for bertviz, as .safetensors or .json")
    p.set_defaults(func=attention_command)

    p = subparsers.add_parser(
        "report", help="write one self-contained HTML page: the model drawn, every tensor a click away",
        description="Write a single HTML file (no network, opens by double-click): the model's diagram drawn "
        "from its own hook points, each box's tensors (named shape, heatmap, statistics, attention's neuron "
        "view), every layer and head of attention, a decoding stepper with temperature/top-k/top-p, the "
        "logit lens and the shape flow. `glassformer serve` serves the same page with a text box.",
    )
    p.add_argument("text", nargs="?", help="the input text (default: article C's sentence)")
    _model_flags(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--max-steps", type=COUNT, default=20, help="the most tokens to decode (default 20)")
    p.add_argument("--top-k", type=COUNT, default=5, help="candidates shown per step (default 5)")
    p.set_defaults(func=report_command)


def trace_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.subject import input_ids, load_subject, random_ids, shifted_source, target_input_ids
    from glassformer.inspect.trace import check_trace_memory, format_table, rows_to_json, run_trace, select_layers

    _given_text(args.text)
    subject = load_subject(args.preset, args.model, args.text, args.seed)
    config = subject.config
    generator = torch.Generator().manual_seed(args.seed)
    encoder_decoder = subject.family == "encoder-decoder"
    if args.text:
        ids = input_ids(subject, args.text)
        if args.target:
            target = target_input_ids(subject, args.target)
        elif config.head != "none":  # a head in place of the LM head reads the source shifted right (BART)
            target = shifted_source(subject, ids)
        else:
            target = torch.tensor([[subject.start_id]])
        target = target.expand(ids.size(0), -1)
    else:
        if args.target:
            raise UserError("--target goes with an input text")
        if args.src_seq is not None and not encoder_decoder:
            raise UserError(f"--src-seq is for encoder-decoder models; {subject.name} is {subject.family}")
        length = (args.src_seq or args.seq) if encoder_decoder else args.seq
        check_trace_memory(config, args.batch, length, args.seq if encoder_decoder else None)  # before allocating
        ids = random_ids(config, args.batch, length, generator)
        target = random_ids(config, args.batch, args.seq, generator)
    rows = run_trace(subject.model, ids, target if encoder_decoder else None)
    layers = _layers(args.layers)
    if layers != "all":
        rows = select_layers(rows, layers)
    if args.json:
        print(rows_to_json(rows, model=subject.name, family=subject.family))
    else:
        print(f"{subject.name}: {subject.family}, d_model {config.d_model}, {config.n_heads} heads of {config.d_head}")
        print(format_table(rows))
    return 0


def explain_command(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _explain_model(args)
    if args.layers is not None:
        raise UserError("--layers goes with --model (the toy walk-through prints every layer)")
    from glassformer.inspect.explain import explain, format_walkthrough
    from glassformer.inspect.toy import DEFAULT_CORPUS, corpus_vocabulary, read_corpus, toy_config, toy_model, train_toy

    pairs = read_corpus(args.corpus) if args.corpus else DEFAULT_CORPUS
    text = _given_text(args.text) or pairs[0][0]
    if args.precision < 0 or args.precision > 10:
        raise UserError(f"--precision must be between 0 and 10, got {args.precision}")
    if args.detail not in ("last", "all", "none") and not args.detail.lstrip("-").isdigit():
        raise UserError(f"--detail takes last, all, none or a step number, got {args.detail!r}")
    tokenizer = corpus_vocabulary(pairs)
    config = toy_config(tokenizer.vocab_size, args.d_model, args.heads)
    model = toy_model(config, args.seed)
    print(f"corpus: {len(pairs)} sentence pairs; vocabulary: {tokenizer.vocab_size} tokens")
    print(f"model: encoder-decoder, d_model {config.d_model}, {config.n_heads} heads of {config.d_head}, "
          f"d_ff {config.d_ff}, {config.n_layers}+{config.decoder_layers} layers, post-norm, tied embeddings")
    if args.train:
        losses = train_toy(model, tokenizer, pairs, args.train, lr=args.lr, seed=args.seed)
        print(f"trained {args.train} Adam steps (lr {args.lr}): loss {losses[0]:.4f} → {losses[-1]:.4f}")
    else:
        print("untrained (random weights): the words it picks are arbitrary; add --train 200 to make it learn")
    print(f"input: {text}\n")
    top = args.top if args.top is not None else (None if tokenizer.vocab_size <= 40 else 10)
    walkthrough = explain(model, tokenizer, text, max_steps=args.max_steps, detail=args.detail, top=top)
    print(format_walkthrough(walkthrough, args.precision), end="")
    return 0


def _explain_model(args: argparse.Namespace) -> int:
    from glassformer.inspect.explain_model import explain_model, format_model_walkthrough
    from glassformer.inspect.subject import DEFAULT_TEXT, from_run

    toy_only = [flag for flag, given in (("--corpus", args.corpus), ("--train", args.train)) if given]
    if toy_only:
        verb = "builds" if len(toy_only) == 1 else "build"
        raise UserError(f"{' and '.join(toy_only)} {verb} the toy model; not for --model")
    if args.precision < 0 or args.precision > 10:
        raise UserError(f"--precision must be between 0 and 10, got {args.precision}")
    text = _given_text(args.text) or DEFAULT_TEXT
    subject = from_run(args.model)
    walkthrough = explain_model(subject, text, cols=args.cols, layers=_layers(args.layers), top=args.top or 5)
    print(format_model_walkthrough(walkthrough, args.precision), end="")
    return 0


def attention_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.attention_data import KIND_TITLES, collect_attention
    from glassformer.inspect.attention_map import legend, shade_grid, values_table
    from glassformer.inspect.subject import DEFAULT_TEXT, load_subject, token_labels

    text = _given_text(args.text) or DEFAULT_TEXT
    if args.export:
        check_output_file(args.export, "the attention export")
    subject = load_subject(args.preset, args.model, text, args.seed)
    if args.target and subject.family != "encoder-decoder":
        raise UserError("--target is for encoder-decoder models")
    attention = collect_attention(subject, text, target=args.target, max_steps=args.max_steps)
    kind = args.kind or attention.kinds()[0]
    if kind == "self" and subject.family == "decoder-only":
        kind = "decoder"  # a decoder-only model's self-attention is its masked one
    maps = attention.get(kind, args.layer)
    heads = range(maps.shape[0]) if args.head is None else [args.head]
    if args.head is not None and not 0 <= args.head < maps.shape[0]:
        raise UserError(f"--head {args.head} is out of range: heads 0..{maps.shape[0] - 1}")
    rows, cols = attention.axes(kind)
    if attention.steps:
        chosen = [s.chosen for s in attention.steps]
        print(f"decoded: {' '.join(token_labels(subject.target_tokenizer, chosen))}")
    for h in heads:
        print(f"\n{KIND_TITLES[kind]} · layer {args.layer} · head {h}   (rows: queries, columns: keys)")
        print(shade_grid(maps[h], rows, cols, color=args.color))
        if args.values:
            print(values_table(maps[h], rows, cols))
    print("\n" + legend(args.color))
    if args.export:
        from glassformer.inspect.bertviz import bertviz_data, save_bertviz

        path = save_bertviz(bertviz_data(attention), args.export)
        print(f"saved every layer's maps for bertviz to {path}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.report import write_report
    from glassformer.inspect.subject import DEFAULT_TEXT, load_subject

    text = _given_text(args.text) or DEFAULT_TEXT
    check_output_file(args.out, "the report")
    subject = load_subject(args.preset, args.model, text, args.seed)
    path = write_report(subject, text, args.out, max_steps=args.max_steps, top_k=args.top_k)
    print(f"wrote {path} ({path.stat().st_size:,} bytes); open it in a browser")
    return 0
