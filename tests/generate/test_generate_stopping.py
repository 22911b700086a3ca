"""Each row stops on its own: at its end token, a stop token or string, or a length limit."""

import pytest

from glassformer.errors import UserError
from glassformer.generate import Stopping, TextStreamer, generate_lm, generate_seq2seq
from glassformer.generate.stopping import stop_reason

PROMPTS = [[1, 5, 6, 7, 8, 9], [1, 10], [1, 11, 12, 13]]
STEPS = 30


def _decode(ids):
    return " ".join(f"w{i}" for i in ids)


def _end_token_stopping_one_row_early(reference):
    """A token that row 0 produces while another row is still running without it."""
    for i, token in enumerate(reference[0]):
        first = reference[0].index(token)
        if any(token not in row[: first + 2] for row in reference[1:]) and first < STEPS - 5:
            return token
    raise AssertionError("no usable end token in the reference run")


def _truncate_at(tokens, end_id):
    return tokens[: tokens.index(end_id) + 1] if end_id in tokens else tokens


@pytest.mark.parametrize("family", ["lm", "seq2seq"])
def test_each_row_stops_at_its_own_end_and_emits_nothing_after(family, lm, seq2seq):
    def run(stopping, on_token=None):
        if family == "lm":
            return generate_lm(lm, PROMPTS, stopping=stopping, on_token=on_token)
        return generate_seq2seq(seq2seq, PROMPTS, start_id=1, stopping=stopping, on_token=on_token)

    reference = [g.tokens for g in run(Stopping(max_new_tokens=STEPS))]
    end_id = _end_token_stopping_one_row_early(reference)
    streamed = []
    out = run(Stopping(end_id=end_id, max_new_tokens=STEPS), on_token=lambda row, t: streamed.append((row, t)))
    for ref, g in zip(reference, out):
        assert g.tokens == _truncate_at(ref, end_id)
        assert g.finish_reason == ("end" if end_id in ref else "max_new_tokens")
    lengths = [len(g.tokens) for g in out]
    assert min(lengths) < max(lengths)  # one row ended while another went on
    # The stream carries exactly each row's tokens, in order, and nothing after its end.
    for row, g in enumerate(out):
        assert [t for r, t in streamed if r == row] == g.tokens


def test_stop_tokens_stop_like_the_end_token(lm):
    reference = generate_lm(lm, PROMPTS[:1], stopping=Stopping(max_new_tokens=STEPS))[0].tokens
    stop = reference[3]
    [g] = generate_lm(lm, PROMPTS[:1], stopping=Stopping(max_new_tokens=STEPS, stop_ids=(stop,)))
    assert g.tokens == _truncate_at(reference, stop)
    assert g.finish_reason == "stop_token"


def test_stop_string_stops_on_the_token_that_completes_it(lm):
    reference = generate_lm(lm, PROMPTS[:1], stopping=Stopping(max_new_tokens=STEPS))[0].tokens
    j = next(j for j in range(2, STEPS - 1) if reference[j] != reference[j + 1])
    stop = f"w{reference[j]} w{reference[j + 1]}"  # spans two tokens
    first = _decode(reference).index(stop)
    expected = next(n for n in range(1, STEPS + 1) if stop in _decode(reference[:n]))
    stopping = Stopping(max_new_tokens=STEPS, stop_strings=(stop, "never"), decode=_decode)
    [g] = generate_lm(lm, PROMPTS[:1], stopping=stopping)
    assert g.tokens == reference[:expected]
    assert g.finish_reason == "stop_string"
    assert _decode(g.tokens).endswith(stop) and _decode(g.tokens).index(stop) == first


def test_stop_reason_checks_in_order():
    stopping = Stopping(end_id=2, max_new_tokens=3, stop_ids=(7,), stop_strings=("w5 w6",), decode=_decode)
    assert stop_reason([5, 2], stopping, 10) == "end"
    assert stop_reason([5, 7], stopping, 10) == "stop_token"
    assert stop_reason([5, 6], stopping, 10) == "stop_string"
    assert stop_reason([5], stopping, 10) is None
    assert stop_reason([5, 9, 9], stopping, 10) == "max_new_tokens"
    assert stop_reason([5, 9], stopping, 2) == "max_length"


def test_stop_strings_need_a_decoder_and_limits_must_be_positive():
    with pytest.raises(UserError, match="decode"):
        Stopping(stop_strings=("x",))
    with pytest.raises(UserError, match="at least 1"):
        Stopping(max_new_tokens=0)


def test_text_streamer_writes_only_the_new_text():
    pieces = []
    streamer = TextStreamer(lambda ids: "".join("ab"[i] for i in ids if i < 2), lambda row, text: pieces.append(text))
    for token in (0, 1, 5, 0):  # 5 decodes to nothing (a special token)
        streamer(0, token)
    assert pieces == ["a", "b", "a"]
    assert streamer.text(0) == "aba"
