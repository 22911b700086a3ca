"""Attention masks as pure functions.

Polarity, used everywhere in glassformer: a boolean mask is True where a query MAY attend to
a key and False where it may not (the convention of
`torch.nn.functional.scaled_dot_product_attention`). Masks broadcast against attention scores
of shape [B, H, T, S]: padding masks are [B, 1, 1, S], causal masks [1, 1, T, S].
"""

from __future__ import annotations

import torch


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """True at real tokens, False at padding.

    Args:
        ids: token ids [B, S].
    Returns:
        [B, 1, 1, S] boolean.
    """
    return (ids != pad_id)[:, None, None, :]


def causal_mask(
    t: int, s: int | None = None, offset: int = 0, device=None, window: int | None = None
) -> torch.Tensor:
    """True where key position <= query position: no query sees its future.

    Args:
        t: number of queries; their positions are offset, ..., offset + t - 1.
        s: number of keys (positions 0 ... s - 1); defaults to offset + t.
        window: also forbid keys `window` or more positions back (sliding-window attention:
            each query sees itself and the window - 1 keys before it).
    Returns:
        [1, 1, T, S] boolean, lower-triangular when offset is 0 and s == t.
    """
    s = offset + t if s is None else s
    query_pos = torch.arange(offset, offset + t, device=device)[:, None]
    key_pos = torch.arange(s, device=device)[None, :]
    allowed = key_pos <= query_pos
    if window is not None:
        allowed = allowed & (key_pos > query_pos - window)
    return allowed[None, None]


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Allowed only where every given mask allows (None masks are ignored)."""
    result = None
    for mask in masks:
        if mask is None:
            continue
        result = mask if result is None else result & mask
    return result
