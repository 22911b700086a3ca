"""Decoding a run on text, and the per-source length margin (input length + 50 in the paper)."""

import pytest

from glassformer.framing import Framing, decoder_start, source_ids
from glassformer.generate import (
    Stopping,
    beam_search,
    generate_seq2seq,
    greedy_seq2seq,
    translate_nbest,
    translate_texts,
)
from glassformer.run_folder import load_run

SOURCES = [[5, 6, 7, 8, 2], [9, 2], [10, 11, 12, 2]]


def test_length_margin_limits_each_target_by_its_own_source(seq2seq):
    out = generate_seq2seq(seq2seq, SOURCES, start_id=1, length_margin=3)
    assert [len(g.tokens) for g in out] == [len(s) + 3 for s in SOURCES]  # no end token: all run out
    assert {g.finish_reason for g in out} == {"max_length"}
    for source, together in zip(SOURCES, out):
        [alone] = generate_seq2seq(seq2seq, [source], start_id=1, length_margin=3)
        assert alone.tokens == together.tokens


def test_beam_search_length_margin_per_source(seq2seq):
    nbests = beam_search(seq2seq, SOURCES, 1, 2, beam_size=2, nbest=2, length_margin=2)
    for source, hyps in zip(SOURCES, nbests):
        assert len(hyps) == 2
        assert all(len(h.tokens) <= len(source) + 2 for h in hyps)
        [alone] = beam_search(seq2seq, [source], 1, 2, beam_size=2, nbest=2, length_margin=2)
        assert [h.tokens for h in alone] == [h.tokens for h in hyps]


def test_greedy_seq2seq_returns_ids_without_the_end_token(runs):
    run = load_run(runs["seq2seq"])
    tok = run.target_tokenizer
    sources = [source_ids(tok, "the cat", Framing()), source_ids(tok, "birds sing at dawn .", Framing())]
    plain = generate_seq2seq(run.model, sources, decoder_start(tok, Framing()), stopping=Stopping(tok.end_id, 9))
    ids = greedy_seq2seq(run, sources, max_new_tokens=9)
    for g, out in zip(plain, ids):
        assert out == (g.tokens[:-1] if g.finish_reason == "end" else g.tokens)
        assert tok.end_id not in out


def test_translate_texts_and_nbest_agree_and_keep_blank_inputs_blank(runs):
    run = load_run(runs["seq2seq"])
    texts = ["the cat", "", "a dog ran"]
    nbests = translate_nbest(run, texts, beam=2, nbest=2, max_new_tokens=5, batch_size=1)
    assert [len(h) for h in nbests] == [2, 0, 2]
    best = translate_texts(run, texts, beam=2, max_new_tokens=5)
    decode = run.target_tokenizer.decode
    assert best == [decode(nbests[0][0].tokens), "", decode(nbests[2][0].tokens)]
    greedy = translate_nbest(run, texts, max_new_tokens=5)
    assert greedy[0][0].score == pytest.approx(greedy[0][0].log_prob / ((5 + len(greedy[0][0].tokens)) / 6) ** 0.6)
