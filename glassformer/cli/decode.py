"""`glassformer translate`, `generate` and `fill-mask`: use a trained run folder on new text."""

from __future__ import annotations

import argparse
import sys

import torch

from glassformer.errors import UserError
from glassformer.framing import MASK_TEXT, Framing, sequence_ids
from glassformer.generate import (
    LENGTH_PENALTIES,
    PAPER_LENGTH_MARGIN,
    Sampling,
    Stopping,
    TextStreamer,
    beam_search_lm,
    fill_mask,
    generate_lm,
    translate_nbest,
)
from glassformer.load import load_model
from glassformer.run_folder import Run
from glassformer.speed import optimize_for_inference
from glassformer.speed.choice import WEIGHTS
from glassformer.cli._numbers import COUNT, NON_NEGATIVE_COUNT, POSITIVE, SEED, real


SPEED_NOTE = "The model is prepared for fast inference first (see --plain)."


def register(subparsers) -> None:
    translate = subparsers.add_parser(
        "translate", help="translate text with a seq2seq run (greedy or beam search)",
        description="Translate each TEXT, or each line of stdin when no TEXT is given, one output line per input. "
        + SPEED_NOTE,
    )
    _model_args(translate)
    translate.add_argument("text", nargs="*", metavar="TEXT", help="texts to translate (default: lines of stdin)")
    translate.add_argument("--beam", type=COUNT, default=1, help="beam size; 1 is greedy decoding (default 1)")
    translate.add_argument("--nbest", type=COUNT, default=1, help="print this many hypotheses per input, with scores")
    translate.add_argument("--length-penalty", type=real(), default=0.6, metavar="A",
                           help="alpha of the GNMT length penalty ((5+len)/6)^A (default 0.6, as the paper)")
    translate.add_argument("--length-norm", choices=LENGTH_PENALTIES, default="gnmt",
                           help="how beam scores are normalised by length (default gnmt)")
    translate.add_argument("--max-new-tokens", type=COUNT,
                           help=f"longest translation in tokens (default: the source's length + {PAPER_LENGTH_MARGIN}, "
                                "as the paper)")
    translate.add_argument("--batch-size", type=COUNT, default=32, help="inputs decoded together (default 32)")
    translate.set_defaults(func=translate_command)

    generate = subparsers.add_parser(
        "generate", help="continue a prompt with a language-model run, streaming the tokens",
        description="Continue --prompt with a decoder-only run; tokens are printed as they are produced. "
        + SPEED_NOTE,
    )
    _model_args(generate)
    generate.add_argument("--prompt", required=True, help="the text to continue")
    generate.add_argument("--greedy", action="store_true", help="always take the most probable token")
    generate.add_argument("--temperature", type=POSITIVE, default=1.0, help="below 1 sharper, above 1 flatter (default 1)")
    generate.add_argument("--top-k", type=COUNT, help="sample among the K most probable tokens")
    generate.add_argument("--top-p", type=real(0, 1, low_open=True), help="sample among the fewest tokens whose mass reaches P")
    generate.add_argument("--min-p", type=real(0, 1), help="drop tokens below MIN_P times the top token's probability")
    generate.add_argument("--repetition-penalty", type=POSITIVE, default=1.0, help="> 1 discourages repeats (default 1)")
    generate.add_argument("--no-repeat-ngram", type=NON_NEGATIVE_COUNT, default=0, metavar="N", help="never repeat an N-gram")
    generate.add_argument("--max-new-tokens", type=COUNT, default=50, help="most tokens to generate (default 50)")
    generate.add_argument("--seed", type=SEED, help="seed for reproducible sampling")
    generate.add_argument("--stop", action="append", default=[], metavar="STR",
                          help="stop once the output contains STR (repeatable; STR is kept)")
    generate.add_argument("--beam", type=int, default=1,
                          help="beam search with this many beams instead of sampling (default 1: no beam search)")
    generate.add_argument("--nbest", type=int, default=1,
                          help="with --beam: print this many continuations, best first, with their scores")
    generate.add_argument("--length-penalty", type=float, default=0.6, metavar="A",
                          help="with --beam: alpha of the GNMT length penalty ((5+len)/6)^A (default 0.6)")
    generate.add_argument("--length-norm", choices=LENGTH_PENALTIES, default="gnmt",
                          help="with --beam: how scores are normalised by length (default gnmt)")
    generate.set_defaults(func=generate_command)

    mask = subparsers.add_parser(
        "fill-mask", help="the likeliest tokens at each <mask> of a text (mlm run)",
        description=f"Print the top-k tokens and probabilities at each {MASK_TEXT} of TEXT. " + SPEED_NOTE,
    )
    _model_args(mask)
    mask.add_argument("text", metavar="TEXT", help=f"a text containing {MASK_TEXT}")
    mask.add_argument("--top-k", type=COUNT, default=5, help="candidates per mask (default 5)")
    mask.set_defaults(func=fill_mask_command)


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a run folder from `glassformer train`")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="where to run (default auto: cuda when available)")
    parser.add_argument("--plain", action="store_true",
                        help="run the plain model. By default it is first prepared for fast inference "
                             "(glassformer.speed.optimize_for_inference: Q/K/V fused into one product, "
                             "small-batch kernels measured on this CPU, bf16 weights on a GPU with native "
                             "bf16); the outputs are the same up to rounding")
    parser.add_argument("--weights", choices=WEIGHTS, default=None,
                        help="bf16: store the weights of the linear layers in bf16 and multiply in bf16 where "
                             "that measures faster on this CPU (everywhere on a GPU); activations, norms, "
                             "softmax and the KV cache stay fp32. Halves the bytes a token reads; outputs "
                             "differ from fp32 by bf16 rounding. fp32: no bf16 at all, also on a GPU "
                             "(default: fp32 on a CPU, the whole model in bf16 on a GPU with native bf16)")


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    return name


def _load(args: argparse.Namespace, command: str, kind: str) -> tuple[Run, str]:
    """The model, prepared for speed unless --plain, and the line saying what that applied ("" with
    --plain), for the command to print on stderr once it has succeeded (a mistake stays one line)."""
    run = load_model(args.model, device=_device(args.device))
    if run.kind != kind:
        raise UserError(f"{args.model} is a {run.kind!r} model; {command} needs a {kind!r} model")
    if args.plain and args.weights == "bf16":
        raise UserError("--weights bf16 is part of preparing the model for speed; it cannot go with --plain")
    if args.plain:
        return run, ""
    return run, optimize_for_inference(run.model, weights=args.weights).summary()


def _done(speed_ups: str) -> int:
    """The speed-ups line on stderr (stdout holds only the outputs); the command's exit status."""
    if speed_ups:
        print(speed_ups, file=sys.stderr)
    return 0


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise UserError(f"{flag} must be at least 1, got {value}")


# translate ---------------------------------------------------------------------------------------
def translate_command(args: argparse.Namespace) -> int:
    for value, flag in ((args.beam, "--beam"), (args.nbest, "--nbest"), (args.batch_size, "--batch-size"),
                        (args.max_new_tokens, "--max-new-tokens")):
        _positive(value, flag)
    if args.nbest > args.beam:
        raise UserError(f"--nbest {args.nbest} needs --beam of at least {args.nbest}")
    run, speed_ups = _load(args, "translate", "seq2seq")  # before waiting on stdin: a wrong model fails at once
    texts = args.text if args.text else sys.stdin.read().splitlines()
    if not any(t.strip() for t in texts):
        raise UserError("no input: give TEXT arguments or lines on stdin")
    decode = run.target_tokenizer.decode
    # Each batch is printed as soon as it is decoded, so long inputs show progress.
    for first in range(0, len(texts), args.batch_size):
        chunk = texts[first:first + args.batch_size]
        nbests = translate_nbest(
            run, chunk, beam=args.beam, nbest=args.nbest, penalty=args.length_norm, alpha=args.length_penalty,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        )
        for i, hyps in enumerate(nbests):
            if args.nbest == 1:
                print(decode(hyps[0].tokens) if hyps else "")  # blank input, blank output line
            else:
                for h in hyps:
                    print(f"{first + i}\t{h.score:.4f}\t{decode(h.tokens)}")
        sys.stdout.flush()
    return _done(speed_ups)


# generate ----------------------------------------------------------------------------------------
def generate_command(args: argparse.Namespace) -> int:
    _positive(args.max_new_tokens, "--max-new-tokens")
    if not args.prompt.strip():
        raise UserError("empty prompt: give --prompt some text to continue")
    _positive(args.beam, "--beam")
    _positive(args.nbest, "--nbest")
    if args.nbest > args.beam:
        raise UserError(f"--nbest {args.nbest} needs --beam of at least {args.nbest}")
    if args.beam > 1:
        _no_sampling_with_beam(args)
    run, speed_ups = _load(args, "generate", "lm")
    tok = run.tokenizer
    prompt = sequence_ids(tok, args.prompt, Framing.from_meta(run.meta), end=False)
    if args.beam > 1:
        [hyps] = beam_search_lm(
            run.model, [prompt], tok.end_id, beam_size=args.beam, nbest=args.nbest, penalty=args.length_norm,
            alpha=args.length_penalty, max_new_tokens=args.max_new_tokens,
        )
        for h in hyps:
            print(tok.decode(h.tokens) if args.nbest == 1 else f"{h.score:.4f}\t{tok.decode(h.tokens)}")
        return _done(speed_ups)
    sampling = Sampling(
        greedy=args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty,
        no_repeat_ngram=args.no_repeat_ngram, seed=args.seed,
    )
    stopping = Stopping(
        end_id=tok.end_id, max_new_tokens=args.max_new_tokens, stop_strings=tuple(args.stop),
        decode=tok.decode,
    )

    def write(_row: int, piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    generate_lm(run.model, [prompt], sampling, stopping, on_token=TextStreamer(tok.decode, write))
    sys.stdout.write("\n")
    sys.stdout.flush()
    return _done(speed_ups)


def _no_sampling_with_beam(args: argparse.Namespace) -> None:
    """Beam search is deterministic: a sampling or stopping flag beside --beam is a mistake."""
    given = [
        flag for flag, value, default in (
            ("--temperature", args.temperature, 1.0), ("--top-k", args.top_k, None), ("--top-p", args.top_p, None),
            ("--min-p", args.min_p, None), ("--repetition-penalty", args.repetition_penalty, 1.0),
            ("--no-repeat-ngram", args.no_repeat_ngram, 0), ("--seed", args.seed, None), ("--stop", args.stop, []),
        ) if value != default
    ]
    if given:
        raise UserError(f"--beam searches deterministically; drop {', '.join(given)}")


# fill-mask ---------------------------------------------------------------------------------------
def fill_mask_command(args: argparse.Namespace) -> int:
    _positive(args.top_k, "--top-k")
    if not args.text.strip():
        raise UserError(f"empty text: give a text containing {MASK_TEXT}")
    if MASK_TEXT not in args.text:
        raise UserError(f"the text has no {MASK_TEXT} to fill")
    run, speed_ups = _load(args, "fill-mask", "mlm")
    tok = run.tokenizer
    ids = sequence_ids(tok, args.text, Framing.from_meta(run.meta))
    [fills] = fill_mask(run.model, [ids], tok.mask_id, args.top_k)
    for n, fill in enumerate(fills, start=1):
        print(f"{MASK_TEXT} {n} (position {fill.position}):")
        for token, prob in zip(fill.tokens, fill.probs):
            print(f"  {prob:.4f}  {tok.id_to_token(token)}")
    return _done(speed_ups)
