"""`glassformer explain --model`: the walk-through for a real or imported model, at its real size.

Article C's toy walk-through (glassformer.inspect.explain) prints every number of a width-6
model. A trained or imported model is too wide for that, so this one walks the same path through
the model's own hook points, in the order they fired on one text: each step as `trace` names it
(what happened, the shape with named dimensions), then the recorded tensor itself, cut to its
first columns (and the first head where there are heads), rows labelled by the text's tokens. It
ends with what the model makes of the text: the next token's candidates (a language model, the
first target token of an encoder-decoder), the labels of a classifier, the tag of every token.
Every number printed is read from the Recording; nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from glassformer.inspect.matrix_text import Block, feature_labels, format_block
from glassformer.inspect.recorder import Recording, record
from glassformer.inspect.subject import Subject, input_ids, shifted_source, token_labels
from glassformer.inspect.trace import TraceRow, named_shape, select_layers, trace_rows

MAX_ROWS = 16  # token rows printed per tensor; a longer text shows its first ones


@dataclass
class ModelWalkthrough:
    """The printable items (text lines and Blocks), the shape table they follow, and the recording."""

    items: list[str | Block]
    rows: list[TraceRow]
    recording: Recording
    tokens: list[str]

    def blocks(self) -> dict[str, Block]:
        """Every Block by key."""
        return {item.key: item for item in self.items if isinstance(item, Block)}


def _label(token: str) -> str:
    """A token as a row label: one word, spaces shown as ·."""
    return "".join("·" if c.isspace() else c for c in token) or "∅"


def _hook_name(row: TraceRow) -> str:
    """The HookPoint a trace row was read from ("a.hook_q|hook_k|hook_v" -> "a.hook_q")."""
    return row.where.split("|")[0].split(" ")[0]


def _matrix(value: torch.Tensor, dims: tuple[str, ...], cols: int) -> tuple[np.ndarray, str]:
    """value (batch row 0) as a 2-D corner: [sequence, features], and a note of what was cut.

    A [B, H, T, S] or [B, H, T, D] tensor shows head 0; a [B, T] or [B, n] one is a single row.
    Columns that are positions (attention's keys) are all shown, up to MAX_ROWS, like the rows.
    """
    if dims and dims[-1] in ("S", "T"):
        cols = MAX_ROWS
    x = value[0].detach().to(torch.float64).cpu()
    note = []
    if x.dim() == 3:  # [H, T, *]
        note.append(f"head 0 of {x.size(0)}")
        x = x[0]
    if x.dim() == 1:
        x = x[None]
    if x.size(0) > MAX_ROWS:
        note.append(f"first {MAX_ROWS} of {x.size(0)} rows")
    if x.size(1) > cols:
        note.append(f"first {cols} of {x.size(1)} columns")
    return x[:MAX_ROWS, :cols].numpy(), ", ".join(note)


def _streams(name: str, tokens: list[str], targets: list[str]) -> tuple[list[str], list[str]]:
    """(query tokens, key tokens) of the stream a hook point sits in: an encoder-decoder's decoder
    reads the target tokens, and its cross-attention's keys are the source tokens."""
    if targets and name.startswith(("tgt_embed", "decoder", "lm_head", "head.")):
        return targets, tokens if ".cross_attn." in name else targets
    return tokens, tokens


def _labels_of(
    values: np.ndarray, dims: tuple[str, ...], queries: list[str], keys: list[str]
) -> tuple[list[str], list[str]]:
    """Row and column labels: tokens where an axis runs over positions, else r0.. / d0.. style."""
    n_rows, n_cols = values.shape
    rows = [_label(t) for t in queries[:n_rows]] if len(dims) >= 3 and n_rows <= len(queries) else [
        f"r{i}" for i in range(n_rows)]
    last = dims[-1] if dims else "x"
    if last in ("S", "T") and n_cols <= len(keys):
        return rows, [_label(t) for t in keys[:n_cols]]
    return rows, feature_labels(last[0].lower(), n_cols)


@torch.no_grad()
def explain_model(
    subject: Subject, text: str, cols: int = 8, layers: list[int] | str | None = None, top: int = 5
) -> ModelWalkthrough:
    """Run subject once on text, recording every hook point's value, and lay out the walk-through.

    Args:
        cols: columns printed per tensor (the first ones).
        layers: layer numbers shown in full ("all", or None: layer 0; the rest folded as in trace).
        top: candidates printed for the next token.
    """
    model, config = subject.model, subject.config
    ids = input_ids(subject, text)
    tokens = token_labels(subject.source_tokenizer, ids[0])
    targets: list[str] = []
    with record(model, values=True, step_by_step=True) as recording:
        if subject.family == "encoder-decoder":
            # A head in place of the LM head reads the source shifted right in the decoder (BART).
            target = shifted_source(subject, ids) if config.head != "none" else torch.tensor([[subject.start_id]])
            targets = token_labels(subject.target_tokenizer, target[0])
            output = model(ids, target)
            inputs = [("source", ids), ("target", target)]
        else:
            output = model(ids)
            inputs = [("tokens", ids)]
    rows = trace_rows(recording, model, inputs, output)
    if layers != "all":
        rows = select_layers(rows, layers)
    n_layers = f"{config.n_layers}+{config.decoder_layers}" if subject.family == "encoder-decoder" else config.n_layers
    items: list[str | Block] = [
        f"{subject.name}: {subject.family}, d_model {config.d_model}, {config.n_heads} heads of {config.d_head}, "
        f"{n_layers} layers",
        f"input: {text}",
        f"tokens ({len(tokens)}): {' '.join(_label(t) for t in tokens)}",
    ]
    recorded = set(recording.names())
    for i, row in enumerate(rows, 1):
        if row.layer and (i == 1 or rows[i - 2].layer != row.layer):
            items += ["", f"═══ {row.layer} ═══"]
        items += ["", f"{i}. {row.step}  {named_shape(row.shape, row.dims)}  {row.what}"]
        name = _hook_name(row)
        if name not in recorded or "(view)" in row.where:  # a view's values are the next row's
            continue
        if name.endswith(".hook_q_heads") and name.replace("_heads", "_rot") in recorded:
            items.append("   (attention reads the heads after the rotation: their values follow the next step)")
            continue
        found = recording.get(name)
        values, note = _matrix(found.value, found.dims, cols)
        row_labels, col_labels = _labels_of(values, found.dims, *_streams(name, tokens, targets))
        title = name.rsplit(".", 1)[-1] + (f" ({note})" if note else "")
        items.append(Block(str(i), title, values, row_labels, col_labels, name))
    items += ["", *_outcome(subject, ids[0].tolist(), output, tokens, top)]
    return ModelWalkthrough(items, rows, recording, tokens)


def _outcome(subject: Subject, ids: list[int], output: torch.Tensor, tokens: list[str], top: int) -> list[str]:
    """What the model makes of the text, in words."""
    config, family, labels = subject.config, subject.family, subject.labels
    if config.head == "classify":
        probs = torch.softmax(output[0].float(), -1)
        ranked = sorted(zip(labels or [f"LABEL_{i}" for i in range(len(probs))], probs.tolist()), key=lambda p: -p[1])
        return ["═══ the classifier's labels ═══", *(f"  {name}  {p:.4f}" for name, p in ranked)]
    if config.head == "tag":
        chosen = output[0].argmax(-1).tolist()
        names = [labels[c] if c < len(labels) else f"LABEL_{c}" for c in chosen]
        tagged = " ".join(f"{_label(t)}/{n}" for t, n in zip(tokens, names))
        return ["═══ the tag of each token ═══", f"  {tagged}"]
    if config.head == "qa":  # [1, 2, T]: each position scored as the answer's start and its end
        start, end = (int(output[0, row].argmax()) for row in (0, 1))  # positions of the text's tokens
        return ["═══ the span head's best start and end, each alone ═══",
                f"  start {_label(tokens[start])} (position {start}), end {_label(tokens[end])} (position {end})"]
    if family == "encoder-only" and config.head != "mlm":
        return [f"model output: {tuple(output.shape)} ({config.head} head)"]
    if family == "encoder-only":  # a masked LM guesses the tokens behind <mask>
        masked = [i for i, x in enumerate(ids) if x == subject.source_tokenizer.mask_id]
        if not masked:
            return ["(no <mask> in the text: put <mask> where the masked-LM head should guess a token)"]
        places = [(f"<mask> at position {i}", output[0, i]) for i in masked]
    else:
        where = "the first target token" if family == "encoder-decoder" else "the next token"
        places = [(where, output[0, -1])]
    tok, lines = subject.target_tokenizer, []
    for where, logits in places:
        probs = torch.softmax(logits.float(), -1)
        best = probs.topk(min(top, probs.numel()))
        lines.append(f"═══ {where}: the {len(best.indices)} most probable of {probs.numel()} ═══")
        for p, i in zip(best.values.tolist(), best.indices.tolist()):
            token = _label(token_labels(tok, [i])[0])
            lines.append(f"  {token}  id {i}  logit {logits[i].item():.4f}  probability {p:.4f}")
    return lines


def format_model_walkthrough(walkthrough: ModelWalkthrough, precision: int = 4) -> str:
    """The walk-through as text: blocks separated by blank lines."""
    out: list[str] = []
    for item in walkthrough.items:
        lines = [format_block(item, precision)] if isinstance(item, Block) else [item]
        for line in lines:
            if line or (out and out[-1]):  # never two blank lines in a row
                out.append(line)
    return "\n".join(out).strip("\n") + "\n"
