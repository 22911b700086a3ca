"""The pure steps of beam search and of the decode loop, on hand-made scores and log-probabilities."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from glassformer.generate import Sampling, Stopping, beam_search
from glassformer.generate.beam import nbest_list
from glassformer.generate.beam_steps import (
    NEG_INF,
    Ending,
    Extension,
    SourceBeams,
    advance_source,
    best_extensions,
    close_beams,
    first_scores,
    next_beams,
    score_extensions,
    walk_extensions,
)
from glassformer.generate.loop import (
    Partial,
    decode_loop,
    extend_context,
    next_tokens,
    penalty_context,
    record,
    stream,
)

PAD, START, END, A, B = 0, 1, 2, 3, 4
K = 2


def _log(probs):
    return torch.tensor(probs).log()


# Two sources, two beams each, vocabulary [PAD, START, END, A, B]; each beam's next-token probabilities.
SCORES = _log([[0.5, 0.3], [0.5, 0.5]])  # [source, beam]
LOGITS = _log([
    [0, 0, 0.1, 0.6, 0.3],  # source 0, beam 0: A .30, B .15, <end> .05
    [0, 0, 0.7, 0.2, 0.1],  # source 0, beam 1: <end> .21, A .06, B .03
    [0, 0, 0.6, 0.3, 0.1],  # source 1, beam 0: <end> .30, A .15, B .05
    [0, 0, 0.4, 0.5, 0.1],  # source 1, beam 1: A .25, <end> .20, B .05
])  # [source * beam, token]
HISTORY = [[A], [B], [A, A], [B, B]]  # each row's tokens so far


def _summary(extensions):
    """(row, token, probability rounded) of each extension."""
    return [(e.row, e.token, round(math.exp(e.log_prob), 6)) for e in extensions]


def test_score_extensions_adds_each_beam_score_to_each_token_log_prob():
    candidates = score_extensions(SCORES, LOGITS)
    assert candidates.shape == (2, K * 5)
    # Index beam * V + token: source 0 beam 1 <end> is 0.3 * 0.7.
    assert candidates[0, 1 * 5 + END].exp().item() == pytest.approx(0.21)
    assert candidates[1, 0 * 5 + A].exp().item() == pytest.approx(0.15)
    assert candidates[:, PAD].tolist() == [NEG_INF, NEG_INF]
    banned = score_extensions(SCORES, LOGITS, banned=END)
    assert banned[:, [END, 5 + END]].tolist() == [[NEG_INF] * 2] * 2
    assert banned[0, 5 + A].exp().item() == pytest.approx(0.06)


def test_best_extensions_are_the_2k_best_per_source_with_their_batch_rows():
    best = best_extensions(score_extensions(SCORES, LOGITS), K)
    assert _summary(best[0]) == [(0, A, 0.3), (1, END, 0.21), (0, B, 0.15), (1, A, 0.06)]
    # Source 1's beams are batch rows 2 and 3.
    assert _summary(best[1]) == [(2, END, 0.3), (3, A, 0.25), (3, END, 0.2), (2, A, 0.15)]


def test_best_extensions_with_fewer_than_2k_candidates():
    candidates = torch.tensor([[-1.0, -3.0, -2.0]])  # K = 3 beams, V = 1 token
    [best] = best_extensions(candidates, 3)
    assert best == [Extension(0, 0, -1.0), Extension(2, 0, -2.0), Extension(1, 0, -3.0)]


def test_walk_closes_an_end_among_the_k_best_and_fills_the_live_beams():
    best = best_extensions(score_extensions(SCORES, LOGITS), K)
    ended, live = walk_extensions(best[0], K, END)
    assert _summary(ended) == [(1, END, 0.21)]
    assert _summary(live) == [(0, A, 0.3), (0, B, 0.15)]  # full at K: (1, A) is never reached


def test_walk_drops_an_end_ranked_below_k():
    best = best_extensions(score_extensions(SCORES, LOGITS), K)
    ended, live = walk_extensions(best[1], K, END)
    # (3, <end>) ranks third: not good enough to close a hypothesis, and not a live beam either.
    assert _summary(ended) == [(2, END, 0.3)]
    assert _summary(live) == [(3, A, 0.25), (2, A, 0.15)]


def test_walk_stops_at_minus_infinity():
    extensions = [Extension(0, A, -1.0), Extension(0, END, NEG_INF), Extension(1, B, NEG_INF)]
    assert walk_extensions(extensions, K, END) == ([], [Extension(0, A, -1.0)])


def test_walk_of_only_ends_leaves_no_live_beam():
    extensions = [Extension(0, END, -1.0), Extension(1, END, -2.0), Extension(0, A, NEG_INF)]
    assert walk_extensions(extensions, K, END) == ([Extension(0, END, -1.0), Extension(1, END, -2.0)], [])


@pytest.mark.parametrize(
    "max_new_tokens, reason", [(3, "max_new_tokens"), (None, "max_length"), (10, "max_length")]
)
def test_close_beams_ends_the_live_beams_as_they_are(max_new_tokens, reason):
    live = [Extension(3, A, -1.5), Extension(2, B, -2.0)]
    assert close_beams(live, HISTORY, max_new_tokens) == [
        Ending([B, B, A], -1.5, reason),
        Ending([A, A, B], -2.0, reason),
    ]


def test_advance_source_records_endings_after_the_earlier_ones_without_mutating_its_inputs():
    earlier = Ending([B, END], -0.5, "end")
    extensions = [Extension(2, END, -1.0), Extension(3, A, -1.25), Extension(3, END, -1.5), Extension(2, A, -2.0)]
    history = [list(h) for h in HISTORY]
    state = SourceBeams(live=(Extension(2, A, -0.7),), finished=(earlier,))
    after = advance_source(state, extensions, history, K, END, max_new_tokens=None, at_limit=False)
    assert after == SourceBeams(
        live=(Extension(3, A, -1.25), Extension(2, A, -2.0)),
        finished=(earlier, Ending([A, A, END], -1.0, "end")),
        done=True,  # K hypotheses have ended
    )
    assert history == HISTORY and state.finished == (earlier,)


def test_advance_source_at_the_limit_closes_the_live_beams_after_the_ended_ones():
    extensions = [Extension(0, END, -1.0), Extension(1, A, -1.25), Extension(0, B, -2.0)]
    after = advance_source(SourceBeams(), extensions, HISTORY, K, END, max_new_tokens=2, at_limit=True)
    assert after.finished == (
        Ending([A, END], -1.0, "end"),
        Ending([B, A], -1.25, "max_new_tokens"),
        Ending([A, B], -2.0, "max_new_tokens"),
    )
    assert after.done


def test_advance_source_goes_on_while_fewer_than_k_have_ended():
    extensions = [Extension(0, A, -1.0), Extension(1, END, -1.25), Extension(1, B, -2.0)]
    after = advance_source(SourceBeams(), extensions, HISTORY, K, END, max_new_tokens=None, at_limit=False)
    assert after == SourceBeams((Extension(0, A, -1.0), Extension(1, B, -2.0)), (Ending([B, END], -1.25, "end"),))


def test_a_done_source_keeps_its_endings_and_drops_its_live_beams():
    ending = Ending([A, END], -1.0, "end")
    state = SourceBeams(live=(Extension(0, A, -2.0),), finished=(ending,), done=True)
    extensions = [Extension(0, END, -0.1)]
    after = advance_source(state, extensions, HISTORY, K, END, max_new_tokens=None, at_limit=True)
    assert after == SourceBeams(finished=(ending,), done=True)


def test_next_beams_fill_empty_slots_with_dead_beams_of_the_source():
    beams = [SourceBeams(live=(Extension(1, A, -1.0), Extension(0, B, -2.5))), SourceBeams(done=True),
             SourceBeams(live=(Extension(5, A, -0.5),))]
    index, tokens, scores = next_beams(beams, K, END, torch.device("cpu"))
    assert index.tolist() == [1, 0, 2, 2, 5, 4]
    assert tokens.tolist() == [A, B, END, END, A, END]
    assert scores.tolist() == [[-1.0, -2.5], [NEG_INF, NEG_INF], [-0.5, NEG_INF]]
    assert (index.dtype, tokens.dtype, scores.dtype) == (torch.long, torch.long, torch.float32)


def test_first_scores_let_only_the_first_beam_extend():
    assert first_scores(2, 3, torch.device("cpu")).tolist() == [[0.0, NEG_INF, NEG_INF]] * 2


@pytest.mark.parametrize("penalty, order", [("none", [[A, END], [A, B, B, B, END], [B, END]]),
                                            ("average", [[A, B, B, B, END], [A, END], [B, END]])])
def test_nbest_list_ranks_by_the_penalised_score(penalty, order):
    finished = [
        Ending([A, END], -1.0, "end"), Ending([A, B, B, B, END], -1.25, "end"), Ending([B, END], -1.5, "end")
    ]
    nbest = nbest_list(finished, 3, penalty, 0.0)
    assert [h.tokens for h in nbest] == order
    assert [h.score for h in nbest] == {"none": [-1.0, -1.25, -1.5], "average": [-0.25, -0.5, -0.75]}[penalty]
    assert [h.tokens for h in nbest_list(finished, 1, penalty, 0.0)] == order[:1]


def test_nbest_list_keeps_finishing_order_among_equal_scores():
    finished = [Ending([A, END], -1.0, "end"), Ending([B, END], -1.0, "end"), Ending([A, A], -0.5, "max_length")]
    assert [h.tokens for h in nbest_list(finished, 3, "none", 0.0)] == [[A, A], [A, END], [B, END]]


class _TableModel(nn.Module):
    """An encoder-decoder whose next-token probabilities depend only on the last target token.

    After <start>: A .6, B .3, <end> .1. After A: A .7, B .2, <end> .1. After B: A .5, B .4, <end> .1.
    """

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(max_len=16, pad_id=PAD)
        rows = {START: [0, 0, 0.1, 0.6, 0.3], A: [0, 0, 0.1, 0.7, 0.2], B: [0, 0, 0.1, 0.5, 0.4]}
        self.table = torch.zeros(5, 5).log()
        for token, probs in rows.items():
            self.table[token] = _log(probs)

    def encode(self, src, src_mask=None):
        return torch.zeros(src.size(0), src.size(1), 1)

    def decode(self, tgt, memory, src_mask=None, cache=None, cache_pos=0):
        return self.table[tgt]  # [B, t, V]


@pytest.mark.parametrize("limits, reason", [(dict(max_new_tokens=2), "max_new_tokens"),
                                            (dict(length_margin=1), "max_length")])
def test_beam_search_closes_the_live_beams_at_the_length_limit(limits, reason):
    # Step 1: A .6, B .3 live (<end> .1 ranks third, below K). Step 2, the last: AA .42, BA .15
    # fill the beam before AB .12, and close there.
    [[first, second]] = beam_search(_TableModel(), [[5]], START, END, beam_size=2, nbest=2, penalty="none",
                                    use_cache=False, **limits)
    assert (first.tokens, second.tokens) == ([A, A], [B, A])
    assert (first.finish_reason, second.finish_reason) == (reason, reason)
    assert [math.exp(first.log_prob), math.exp(second.log_prob)] == pytest.approx([0.42, 0.15])


class _ScriptedStepper:
    """Returns preset logits [B, V] step after step and records the tokens it is fed."""

    def __init__(self, logits):
        self.logits, self.fed = list(logits), []

    def prefill(self):
        return self.logits.pop(0)

    def step(self, tokens):
        self.fed.append(tokens.tolist())
        return self.logits.pop(0)


def _one_hot(*tokens):
    """Logits [len(tokens), 5] that make each row's token clearly the most probable."""
    return torch.eye(5)[list(tokens)] * 4.0


def test_decode_loop_stops_each_row_on_its_own_and_feeds_pad_after():
    stepper = _ScriptedStepper([_one_hot(A, A), _one_hot(END, B), _one_hot(A, B), _one_hot(B, A)])
    streamed = []
    out = decode_loop(stepper, [3, 3], Sampling(), Stopping(end_id=END), PAD,
                      on_token=lambda row, token: streamed.append((row, token)))
    assert [g.tokens for g in out] == [[A, END], [A, B, B]]
    assert [g.finish_reason for g in out] == ["end", "max_length"]
    assert stepper.fed == [[A, A], [END, B]]  # the third step's choice is not fed: every row has stopped
    assert streamed == [(0, A), (1, A), (0, END), (1, B), (1, B)]
    top = torch.log_softmax(_one_hot(A), dim=-1)[0, A].item()
    assert out[0].log_prob == pytest.approx(2 * top)


def test_penalty_context_only_with_penalties():
    device = torch.device("cpu")
    assert penalty_context(Sampling(), torch.ones(2, 3, dtype=torch.long), None, 2, device) == (None, None)
    previous, valid = penalty_context(Sampling(repetition_penalty=1.2), None, None, 2, device)
    assert (previous.shape, previous.dtype, valid.shape, valid.dtype) == ((2, 0), torch.long, (2, 0), torch.bool)
    previous, valid = penalty_context(Sampling(no_repeat_ngram=2), torch.tensor([[5, 6]]), None, 1, device)
    assert previous.tolist() == [[5, 6]] and valid.tolist() == [[True, True]]


def test_next_tokens_pads_stopped_rows_and_gives_the_unpenalised_log_prob():
    logits = _log([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    active = torch.tensor([True, False])
    tokens, log_probs = next_tokens(logits, Sampling(), active, 2, None, None, None)
    assert tokens.tolist() == [1, 2]
    assert math.exp(log_probs[0].item()) == pytest.approx(0.5)
    tokens, log_probs = next_tokens(logits, Sampling(), None, 2, None, None, None)  # None: no row has stopped
    assert tokens.tolist() == [1, 0] and [math.exp(p) for p in log_probs.tolist()] == pytest.approx([0.5, 0.6])
    # With a repetition penalty on token 1 the choice moves, but the log-probability stays the model's.
    penalised, log_probs = next_tokens(logits, Sampling(repetition_penalty=3.0), torch.tensor([True, True]), 2,
                                       torch.tensor([[1], [1]]), torch.tensor([[True], [True]]), None)
    assert penalised.tolist() == [2, 0]
    assert [math.exp(p) for p in log_probs.tolist()] == pytest.approx([0.3, 0.6])


def test_seeded_next_tokens_repeat():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    sampling, active = Sampling(greedy=False, seed=3), torch.tensor([True, True, True])
    first = next_tokens(logits, sampling, active, PAD, None, None, sampling.generator())[0]
    again = next_tokens(logits, sampling, active, PAD, None, None, sampling.generator())[0]
    assert first.tolist() == again.tolist()
    expected = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=sampling.generator())[:, 0]
    assert first.tolist() == expected.tolist()


def test_record_appends_to_unfinished_rows_only():
    stopped = Partial((A, END), -1.0, (), "end")
    rows = [stopped, Partial((A,), -0.5), Partial()]
    logits = torch.arange(15.0).view(3, 5)
    after = record(rows, [PAD, END, B], [-9.0, -0.25, -2.0], logits, Stopping(end_id=END), [5, 5, 1])
    assert after[0] is stopped
    assert (after[1].tokens, after[1].log_prob, after[1].reason) == ((A, END), -0.75, "end")
    assert (after[2].tokens, after[2].log_prob, after[2].reason) == ((B,), -2.0, "max_length")
    assert [[t.tolist() for t in row.logits] for row in after[1:]] == [[logits[1].tolist()], [logits[2].tolist()]]
    assert rows[1] == Partial((A,), -0.5)  # untouched
    generation = after[2].generation(keep_logits=True)
    assert (generation.tokens, generation.finish_reason) == ([B], "max_length")
    assert generation.logits.tolist() == [logits[2].tolist()]
    assert record(rows[1:], [B, B], [-1.0, -1.0], None, Stopping(), [5, 5])[0] == Partial((A, B), -1.5)


def test_stream_tells_only_unfinished_rows():
    calls = []
    rows = [Partial(), Partial(reason="end"), Partial()]
    stream(lambda row, token: calls.append((row, token)), rows, [A, PAD, B])
    assert calls == [(0, A), (2, B)]


def test_extend_context_marks_stopped_rows_as_padding():
    previous, valid = extend_context(torch.tensor([[5], [6]]), torch.tensor([[True], [True]]),
                                     torch.tensor([A, PAD]), torch.tensor([True, False]))
    assert previous.tolist() == [[5, A], [6, PAD]]
    assert valid.tolist() == [[True, True], [True, False]]
    previous, valid = extend_context(previous, valid, torch.tensor([B, A]), None)  # None: no row has stopped
    assert previous.tolist() == [[5, A, B], [6, PAD, A]] and valid.tolist() == [[True, True, True], [True, False, True]]
