"""Decoding a run folder's model on text: framing, tokenizers and sensible limits applied.

The functions elsewhere in this package take models and ids; these take a loaded `Run` and
are what the commands and the training loop's evaluation call.
"""

from __future__ import annotations

from collections.abc import Sequence

from glassformer.framing import Framing, decoder_start, source_ids
from glassformer.generate.beam import beam_search, length_penalty
from glassformer.generate.encoder_decoder import generate_seq2seq
from glassformer.generate.results import Generation, Hypothesis
from glassformer.generate.stopping import END, Stopping
from glassformer.run_folder import Run

# Section 6.1 of the paper: "maximum output length during inference to input length + 50".
PAPER_LENGTH_MARGIN = 50


def greedy_seq2seq(
    run: Run, sources: Sequence[Sequence[int]], device=None, max_new_tokens: int | None = None
) -> list[list[int]]:
    """Greedy translations of framed sources, as target ids without <start> and <end>.

    Args:
        sources: id lists from `glassformer.framing.source_ids`.
        device: unused; inputs go where the run's model is (kept for the callers' symmetry).
        max_new_tokens: longest output; None means the source's length + 50, as the paper.
    """
    tok = run.target_tokenizer
    stopping = Stopping(end_id=tok.end_id, max_new_tokens=max_new_tokens)
    margin = PAPER_LENGTH_MARGIN if max_new_tokens is None else None
    start = decoder_start(tok, Framing.from_meta(run.meta))
    out = generate_seq2seq(run.model, sources, start, stopping=stopping, length_margin=margin)
    return [g.tokens[:-1] if g.finish_reason == END else g.tokens for g in out]


def translate_nbest(
    run: Run,
    texts: Sequence[str],
    beam: int = 1,
    nbest: int = 1,
    penalty: str = "gnmt",
    alpha: float = 0.6,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
) -> list[list[Hypothesis]]:
    """The nbest translations of each text, best first: greedy at beam 1, else beam search.

    Blank texts get an empty list (nothing is decoded for them).

    Args:
        penalty, alpha: length penalty of the scores (see `glassformer.generate.beam.length_penalty`).
        max_new_tokens: longest output; None means each source's length + 50, as the paper.
        batch_size: texts decoded together.
    """
    framing = Framing.from_meta(run.meta)
    source_tok, target_tok = run.source_tokenizer, run.target_tokenizer
    start, end = decoder_start(target_tok, framing), target_tok.end_id
    margin = PAPER_LENGTH_MARGIN if max_new_tokens is None else None
    rows = [i for i, text in enumerate(texts) if text.strip()]
    results: list[list[Hypothesis]] = [[] for _ in texts]
    for first in range(0, len(rows), batch_size):
        chunk = rows[first:first + batch_size]
        sources = [source_ids(source_tok, texts[i], framing) for i in chunk]
        if beam == 1:
            stopping = Stopping(end_id=end, max_new_tokens=max_new_tokens)
            out = generate_seq2seq(run.model, sources, start, stopping=stopping, length_margin=margin)
            nbests = [[_scored(g, penalty, alpha)] for g in out]
        else:
            nbests = beam_search(run.model, sources, start, end, beam_size=beam, nbest=nbest, penalty=penalty,
                                 alpha=alpha, max_new_tokens=max_new_tokens, length_margin=margin)
        for i, hyps in zip(chunk, nbests):
            results[i] = hyps
    return results


def translate_texts(
    run: Run, texts: Sequence[str], device=None, beam: int = 1, max_new_tokens: int | None = None
) -> list[str]:
    """The best translation of each text, decoded (special tokens left out).

    Args:
        device: unused; inputs go where the run's model is.
    """
    nbests = translate_nbest(run, texts, beam=beam, max_new_tokens=max_new_tokens)
    return [run.target_tokenizer.decode(hyps[0].tokens) if hyps else "" for hyps in nbests]


def _scored(generation: Generation, penalty: str, alpha: float) -> Hypothesis:
    """A greedy output scored like a beam search hypothesis."""
    score = generation.log_prob / length_penalty(len(generation.tokens), penalty, alpha)
    return Hypothesis(generation.tokens, score, generation.log_prob, generation.finish_reason)
