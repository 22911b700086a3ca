"""Streaming: turn on_token(batch_index, token_id) callbacks into text written as it is produced."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class TextStreamer:
    """An on_token callback that writes each row's newly decoded text.

    The whole output so far is decoded at every token and only the new suffix is written, so
    that tokenizers whose pieces join without spaces (BPE) still stream correct text.

    Args:
        decode: ids -> text (special tokens left out).
        write: receives (batch_index, text_piece), e.g. to print and flush.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], write: Callable[[int, str], None]):
        self.decode = decode
        self.write = write
        self.ids: dict[int, list[int]] = {}
        self.written: dict[int, str] = {}

    def __call__(self, row: int, token: int) -> None:
        ids = self.ids.setdefault(row, [])
        ids.append(token)
        text, done = self.decode(ids), self.written.get(row, "")
        # A decoder may rewrite the end of its text as tokens arrive (a piece completing a
        # character or word); wait until the text extends what was already written.
        if len(text) > len(done) and text.startswith(done):
            self.write(row, text[len(done):])
            self.written[row] = text

    def text(self, row: int = 0) -> str:
        """Everything written for a row so far."""
        return self.written.get(row, "")
