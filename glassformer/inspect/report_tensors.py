"""Recorded tensors packed for the report page: trimmed, stored as float16, with exact statistics.

A page must stay small enough to open at once (a 6-layer, 384-wide model on a 20-token input
stays under 5 MB), so every tensor is stored as float16 (about three significant digits),
base64-encoded, and cut to at most MAX_ROWS positions and MAX_COLS features; a note says so
wherever a cut was made. The statistics (min, max, mean, standard deviation) are computed from
the full float32 tensor before any cut.
"""

from __future__ import annotations

import base64

import numpy as np
import torch

from glassformer.inspect.recorder import Record
from glassformer.inspect.trace import named_shape, stream_dims

# [B, T, A] tensors whose numbers are those of a [B, H, T, D] one, heads side by side: stored
# once, as the heads; the page lays the heads out side by side again.
HEAD_VIEWS = {
    "hook_q": "hook_q_heads", "hook_k": "hook_k_heads", "hook_v": "hook_v_heads", "hook_merged": "hook_context",
}

MAX_ROWS = 64
MAX_COLS = 512
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def statistics(value: torch.Tensor) -> dict:
    """min, max, mean and std over the finite entries, and how many are -inf (masked scores)."""
    v = value.detach().to(torch.float64)
    finite = v[torch.isfinite(v)]
    stats = {"masked": int(torch.isneginf(v).sum()), "count": int(v.numel())}
    if finite.numel():
        stats.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                     std=float(finite.std(unbiased=False)))
    return {k: (round(x, 4) if isinstance(x, float) else x) for k, x in stats.items()}


def pack_float16(array: np.ndarray) -> str:
    """array as little-endian float16 bytes in base64 (finite values clipped to float16's range)."""
    a = np.asarray(array, dtype=np.float64)
    a = np.where(np.isfinite(a), np.clip(a, -_FLOAT16_MAX, _FLOAT16_MAX), a)
    return base64.b64encode(a.astype("<f2").tobytes()).decode("ascii")


def tensor_entries(records: list[Record], family: str) -> dict[str, dict]:
    """tensor_entry of every record by name; a HEAD_VIEWS tensor refers to its heads instead of
    repeating their numbers ({"view_of": name of the [B, H, T, D] tensor})."""
    by_name = {r.name: r for r in records}
    out = {}
    for r in records:
        owner, _, hook = r.name.rpartition(".")
        heads = by_name.get(f"{owner}.{HEAD_VIEWS.get(hook)}")
        if heads is not None and heads.value[0].flatten().numel() == r.value[0].numel():
            entry = tensor_entry(r, family, max_cols=r.value.shape[-1], pack=False)
            entry["view_of"] = heads.name
            out[r.name] = entry
        else:
            out[r.name] = tensor_entry(r, family)
    return out


def tensor_entry(
    r: Record, family: str, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS, pack: bool = True
) -> dict:
    """One recorded tensor (batch row 0) for the page.

    Returns:
        {"shape": "[B=1, T=7, d_model=64]", "what", "stats", "grid": [planes, rows, cols] as
        stored (planes are heads for [B, H, T, X] tensors, else 1), "plane": the name of the
        planes' dimension or None, "data": base64 float16, "note": what was cut, or None}.
    """
    dims = stream_dims(r.name, r.dims, family)
    value = r.value[0].float()  # drop the batch: the page shows one input
    names = list(dims[1:])
    if value.dim() == 1:
        value, names = value[None], ["", *names]
    if value.dim() == 2:
        value, plane = value[None], None
    else:
        value, plane = value.reshape(-1, *value.shape[-2:]), names[0]
    planes, rows, cols = value.shape
    notes = []
    if rows > max_rows:
        notes.append(f"first {max_rows} of {rows} {names[-2]} positions")
    if cols > max_cols:
        notes.append(f"first {max_cols} of {cols} {names[-1]} features")
    kept = value[:, :max_rows, :max_cols].numpy()
    return {
        "shape": named_shape(r.shape, dims),
        "dims": list(dims),
        "what": r.what,
        "stats": statistics(r.value[0]),
        "grid": list(kept.shape),
        "plane": plane,
        "axes": names[-2:],
        "data": pack_float16(kept) if pack else None,
        "note": ("shown: " + ", ".join(notes)) if notes else None,
    }
