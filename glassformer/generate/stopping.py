"""When one sequence stops growing: its end token, a stop token or string, or a length limit.

Every check looks at one sequence's generated tokens only, so each row of a batch stops on its
own. The token that triggers a stop is kept as the sequence's last token (the <end> token
included), and no token follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from glassformer.errors import UserError

# Finish reasons, in the order they are checked.
END = "end"
STOP_TOKEN = "stop_token"
STOP_STRING = "stop_string"
MAX_NEW_TOKENS = "max_new_tokens"
MAX_LENGTH = "max_length"


@dataclass(frozen=True)
class Stopping:
    """What ends a generated sequence."""

    end_id: int | None = None
    """The end-of-sequence token; None never ends on it."""
    max_new_tokens: int | None = None
    """At most this many generated tokens; None means as many as the model's positions allow."""
    stop_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    """Stop once the decoded output contains one of these (it is kept in the output)."""
    decode: Callable[[Sequence[int]], str] | None = None
    """Ids -> text, needed for stop_strings."""

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UserError(f"max new tokens must be at least 1, got {self.max_new_tokens}")
        if self.stop_strings and self.decode is None:
            raise UserError("stop strings need a decode function to turn tokens into text")
        if any(s == "" for s in self.stop_strings):
            raise UserError("a stop string must not be empty")


def check_prompt_length(n_tokens: int, max_len: int, what: str = "prompt") -> None:
    """UserError when a prompt leaves the model no position for a new token.

    Args:
        n_tokens: the prompt's length in tokens, special tokens included.
        max_len: the model's number of positions.
    """
    if n_tokens >= max_len:
        raise UserError(f"{what} of {n_tokens} tokens reaches the model's maximum of {max_len}")


def room(n_tokens: int, max_len: int, stopping: Stopping) -> int:
    """How many tokens a sequence that already holds n_tokens may still grow by."""
    left = max_len - n_tokens
    return left if stopping.max_new_tokens is None else min(left, stopping.max_new_tokens)


def stop_reason(generated: Sequence[int], stopping: Stopping, max_new: int) -> str | None:
    """Why this sequence stops after its last token, or None when it goes on.

    Args:
        generated: the sequence's generated tokens so far (at least one).
        max_new: the sequence's length limit, from `room` (reached before max_new_tokens, it
            means the model ran out of positions).
    """
    last = generated[-1]
    if stopping.end_id is not None and last == stopping.end_id:
        return END
    if last in stopping.stop_ids:
        return STOP_TOKEN
    if stopping.stop_strings:
        # The text before this token held no stop string (we would have stopped), so any
        # occurrence now ends with this token.
        text = stopping.decode(list(generated))
        if any(s in text for s in stopping.stop_strings):
            return STOP_STRING
    if stopping.max_new_tokens is not None and len(generated) >= stopping.max_new_tokens:
        return MAX_NEW_TOKENS
    if len(generated) >= max_new:
        return MAX_LENGTH
    return None
