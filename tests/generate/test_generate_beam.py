"""Beam search: greedy at beam 1, honest scores, batch independence, and beating greedy."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate import Stopping, beam_search, generate_seq2seq, length_penalty

START, END, A, B = 1, 2, 3, 4
SOURCES = [[5, 6, 7, 8, 2], [9, 2], [10, 11, 12, 2]]


class _TokenCache:
    """The hand-built model's cache: the target tokens so far, reordered like a KV cache."""

    def __init__(self):
        self.tokens = None

    def reorder(self, index):
        self.tokens = self.tokens.index_select(0, index)


class ConstructedModel(nn.Module):
    """A stand-in encoder-decoder whose next-token distribution depends only on the target so far.

    After <start>: A 0.6, B 0.4. After A: <end> 0.5, A 0.25, B 0.25. After B: <end> 0.9,
    A 0.05, B 0.05. Later: <end>. Greedy takes A then <end> (0.6 * 0.5 = 0.30); the best
    sequence is B <end> (0.4 * 0.9 = 0.36).
    """

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(max_len=8, pad_id=0)
        table = {START: [0, 0, 0, 0.6, 0.4], A: [0, 0, 0.5, 0.25, 0.25], B: [0, 0, 0.9, 0.05, 0.05]}
        self.probs = {k: torch.tensor(v) for k, v in table.items()}

    def encode(self, src, src_mask=None):
        return torch.zeros(src.size(0), src.size(1), 1)

    def new_cache(self, max_len=None):
        return _TokenCache()

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None, cache=None, cache_pos=0):
        if cache is not None:
            previous = cache.tokens[:, :cache_pos] if cache.tokens is not None else tgt[:, :0]
            tgt = cache.tokens = torch.cat([previous, tgt], dim=1)
        rows = []
        for row in tgt.tolist():
            probs = self.probs[row[-1]] if len(row) <= 2 and row[-1] in self.probs else torch.eye(5)[END]
            rows.append(probs)
        return torch.stack(rows)[:, None].log()  # [B, 1, V]: only the last position is read


@pytest.mark.parametrize("use_cache", [True, False])
def test_beam_search_finds_the_best_sequence_greedy_misses(use_cache):
    model = ConstructedModel()
    greedy = generate_seq2seq(model, [[5]], START, stopping=Stopping(end_id=END), use_cache=use_cache)
    assert greedy[0].tokens == [A, END]
    [[best, second]] = beam_search(model, [[5]], START, END, beam_size=2, nbest=2, penalty="none", use_cache=use_cache)
    assert best.tokens == [B, END] and best.score == pytest.approx(torch.tensor(0.36).log().item())
    assert second.tokens == [A, END] and second.score == pytest.approx(torch.tensor(0.30).log().item())
    [[only]] = beam_search(model, [[5]], START, END, beam_size=1, penalty="none", use_cache=use_cache)
    assert only.tokens == [A, END]


def test_beam_of_one_equals_greedy(seq2seq):
    greedy = generate_seq2seq(seq2seq, SOURCES, START, stopping=Stopping(end_id=END, max_new_tokens=25))
    beams = beam_search(seq2seq, SOURCES, START, END, beam_size=1, max_new_tokens=25, penalty="none")
    for g, [h] in zip(greedy, beams):
        assert h.tokens == g.tokens
        assert h.log_prob == pytest.approx(g.log_prob, abs=1e-4)
        assert h.finish_reason == g.finish_reason


def _teacher_forced_log_prob(model, source, tokens):
    src = torch.tensor([source])
    tgt = torch.tensor([[START] + tokens[:-1]])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(src, tgt), dim=-1)[0]
    return log_probs.gather(-1, torch.tensor(tokens)[:, None]).sum().item()


@pytest.mark.parametrize("penalty, alpha", [("gnmt", 0.6), ("gnmt", 1.0), ("average", 0.0), ("none", 0.0)])
def test_scores_are_the_tokens_log_probabilities_over_the_length_penalty(seq2seq, penalty, alpha):
    nbests = beam_search(seq2seq, SOURCES, START, END, beam_size=3, nbest=3, penalty=penalty, alpha=alpha,
                         max_new_tokens=12)
    reasons = set()
    for source, hyps in zip(SOURCES, nbests):
        assert len(hyps) == 3
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert END not in h.tokens[:-1]
            assert h.log_prob == pytest.approx(_teacher_forced_log_prob(seq2seq, source, h.tokens), abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens), penalty, alpha), abs=1e-5)
            reasons.add(h.finish_reason)
    assert reasons <= {"end", "max_new_tokens"}


def test_length_penalties_as_documented():
    assert length_penalty(7, "gnmt", 0.6) == pytest.approx(2.0 ** 0.6)
    assert length_penalty(7, "gnmt", 0.0) == 1.0
    assert length_penalty(7, "average") == 7.0
    assert length_penalty(7, "none") == 1.0
    with pytest.raises(UserError, match="unknown length penalty"):
        length_penalty(7, "cubic")


def test_batched_beam_search_equals_each_source_alone(seq2seq):
    batch = beam_search(seq2seq, SOURCES, START, END, beam_size=3, nbest=3, max_new_tokens=12)
    for source, together in zip(SOURCES, batch):
        [alone] = beam_search(seq2seq, [source], START, END, beam_size=3, nbest=3, max_new_tokens=12)
        assert [h.tokens for h in together] == [h.tokens for h in alone]
        assert [h.score for h in together] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_cached_beam_search_equals_uncached(seq2seq):
    cached = beam_search(seq2seq, SOURCES, START, END, beam_size=3, nbest=2, max_new_tokens=12)
    full = beam_search(seq2seq, SOURCES, START, END, beam_size=3, nbest=2, max_new_tokens=12, use_cache=False)
    assert [[h.tokens for h in n] for n in cached] == [[h.tokens for h in n] for n in full]


def test_min_length_forbids_an_early_end():
    model = ConstructedModel()
    [[h]] = beam_search(model, [[5]], START, END, beam_size=2, penalty="none", min_length=2)
    # B <end> and A <end> are ruled out; the best two-token start is A A (or A B), 0.15.
    assert h.tokens[:1] == [A] and len(h.tokens) == 3 and h.tokens[-1] == END
    assert h.log_prob == pytest.approx(torch.tensor(0.15).log().item())


def test_nbest_larger_than_the_beam_is_an_error(seq2seq):
    with pytest.raises(UserError, match="n-best of 3 needs a beam of at least 3"):
        beam_search(seq2seq, SOURCES, START, END, beam_size=2, nbest=3)
