"""Ragged id lists to padded batches: left padding for prompts, right padding for sources."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _pad(
    sequences: Sequence[Sequence[int]], pad_id: int, left: bool, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        if seq:
            cols = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[row, cols] = torch.tensor(list(seq), dtype=torch.long)
            valid[row, cols] = True
    return ids.to(device), valid.to(device)


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad on the left so that every row's last real token sits in the last column.

    Returns:
        ids [B, L] and valid [B, L] (True at real tokens).
    """
    return _pad(sequences, pad_id, True, device)


def right_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad on the right (encoder inputs, where position 0 is every row's first token).

    Returns:
        ids [B, L] and valid [B, L] (True at real tokens).
    """
    return _pad(sequences, pad_id, False, device)


def positions_from_valid(valid: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each row's first real token (0 at and before it).

    Args:
        valid: [B, L], True at real tokens (left padding).
    Returns:
        [B, L] long.
    """
    return (valid.long().cumsum(dim=-1) - 1).clamp(min=0)

