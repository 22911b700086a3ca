"""A self-contained HTML report of one input: the model's diagram with every tensor behind it,
attention of every layer and head, a decoding stepper with sampling controls, the logit lens.

The page is one file: the template (CSS and JavaScript inline, a content-security policy that
forbids any network request) with the data as JSON inside it. It opens by double-click; the
same page is what `glassformer serve` answers with (see glassformer/inspect/serve.py).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from glassformer.errors import UserError
from glassformer.files import check_output_file
from glassformer.inspect.attention_data import KIND_TITLES, AttentionSet, collect_attention
from glassformer.inspect.diagram import build_diagram
from glassformer.inspect.lens import logit_lens
from glassformer.inspect.recorder import record
from glassformer.inspect.report_tensors import tensor_entries
from glassformer.inspect.subject import Subject, decoded_text, input_ids, shifted_source, token_labels
from glassformer.inspect.trace import named_shape, run_trace, select_layers
from glassformer.models import count_parameters

TEMPLATE = "report_template.html"
PLACEHOLDER = "__GLASSFORMER_DATA__"
STORED_LOGITS = 256
"""The most logits per decoding step stored for the page's temperature / top-k / top-p controls."""


def _round(a: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def _decoding(subject: Subject, attention: AttentionSet, top_k: int) -> list[dict]:
    tok = subject.target_tokenizer
    out = []
    for k, (step, probs) in enumerate(zip(attention.steps, attention.probabilities)):
        order = np.argsort(-probs, kind="stable")[:top_k]
        logits = step.logits.to(torch.float64).numpy()
        kept = np.argsort(-logits, kind="stable")[:STORED_LOGITS]
        out.append({
            "step": k,
            "prefix": token_labels(tok, step.prefix),
            "chosen": token_labels(tok, [step.chosen])[0],
            "top": [[token_labels(tok, [int(i)])[0], round(float(probs[i]), 4)] for i in order],
            "logits": [[token_labels(tok, [int(i)])[0], round(float(logits[i]), 4)] for i in kept],
            "dropped": int(logits.size - kept.size),
        })
    return out


def _lens(subject: Subject, inputs: tuple[torch.Tensor, ...], tokens: list[str]) -> dict | None:
    """The logit lens's most probable token at every layer and position, or None without a vocabulary output."""
    try:
        logits = logit_lens(subject.model, *inputs)[:, 0].float()  # [layers + 1, T, V]
    except UserError:
        return None
    probs, ids = torch.softmax(logits, dim=-1).max(dim=-1)  # [layers + 1, T]
    tok = subject.target_tokenizer if subject.family != "encoder-only" else subject.source_tokenizer
    return {
        "rows": ["embeddings"] + [f"after layer {i}" for i in range(logits.size(0) - 1)],
        "tokens": tokens,
        "top": [[[token_labels(tok, [int(i)])[0], round(float(p), 4)] for i, p in zip(row_ids, row_p)]
                for row_ids, row_p in zip(ids, probs)],
    }


def _tensors(subject: Subject, inputs: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
    """One recorded forward pass on the whole input: (the diagram, every tensor for the page)."""
    with record(subject.model, values=True) as recording:
        subject.model(*inputs)
    records = recording.records
    return build_diagram(subject.model, records), tensor_entries(records, subject.family)


@torch.no_grad()
def build_report(
    subject: Subject, text: str, max_steps: int = 20, top_k: int = 5, panels: list[dict] | None = None
) -> dict:
    """Everything the page shows, as JSON-ready data.

    Args:
        text: the input (an encoder-decoder's source, a decoder-only prompt, an encoder-only text).
        max_steps: the most tokens to decode greedily.
        top_k: candidates shown per decoding step.
        panels: further results to show as tables (ablation, patching): each
            {"title": str, "note": str, "columns": [str], "rows": [[str | number]]}.
    """
    if max_steps < 1 or top_k < 1:
        raise UserError(f"--max-steps and --top-k must be at least 1, got {max_steps} and {top_k}")
    config, family = subject.config, subject.family
    attention = collect_attention(subject, text, max_steps=max_steps)
    ids = input_ids(subject, text)
    if family == "encoder-decoder":
        decoder_in = torch.tensor([attention.steps[-1].prefix]) if attention.steps else shifted_source(subject, ids)
        rows = run_trace(subject.model, ids, decoder_in)
        forward = (ids, decoder_in)
        streams = {"S": attention.source_tokens, "T": attention.target_tokens}
        inputs = [
            {"label": "source", "tokens": attention.source_tokens, "ids": ids[0].tolist()},
            {"label": "decoder input", "tokens": attention.target_tokens, "ids": decoder_in[0].tolist()},
        ]
    elif family == "decoder-only":
        full = torch.tensor([attention.steps[-1].prefix]) if attention.steps else ids  # a classifier decodes nothing
        rows = run_trace(subject.model, full)
        forward = (full,)
        streams = {"T": attention.target_tokens}
        inputs = [{"label": "prompt and continuation", "tokens": attention.target_tokens, "ids": full[0].tolist()}]
    else:
        rows = run_trace(subject.model, ids)
        forward = (ids,)
        streams = {"T": attention.source_tokens}
        inputs = [{"label": "tokens", "tokens": attention.source_tokens, "ids": ids[0].tolist()}]
    diagram, tensors = _tensors(subject, forward)
    translation = None
    if attention.steps:
        chosen = [s.chosen for s in attention.steps if s.chosen != subject.end_id]
        translation = decoded_text(subject.target_tokenizer, chosen)
    layers = f"{config.n_layers} layers" if family != "encoder-decoder" else f"{config.n_layers}+{config.decoder_layers} layers"
    return {
        "format": "glassformer-report",
        "model": {
            "name": subject.name, "family": family, "d_model": config.d_model, "n_heads": config.n_heads,
            "d_head": config.d_head, "layers": layers, "parameters": count_parameters(subject.model),
            "norm": config.norm, "positions": config.positions,
        },
        "text": text,
        "inputs": inputs,
        "translation": translation,
        "trace": [
            {"step": r.step, "shape": named_shape(r.shape, r.dims), "where": r.where, "what": r.what, "layer": r.layer}
            for r in select_layers(rows)
        ],
        "attention": {
            "kinds": attention.kinds(),
            "titles": {k: KIND_TITLES[k] for k in attention.kinds()},
            "maps": {k: [_round(m) for m in attention.maps[k]] for k in attention.kinds()},
            "axes": {k: list(attention.axes(k)) for k in attention.kinds()},
        },
        "decoding": _decoding(subject, attention, top_k),
        "streams": streams,
        "diagram": diagram,
        "tensors": tensors,
        "lens": _lens(subject, forward, streams["T"]),
        "panels": _check_panels(panels or []),
    }


def _check_panels(panels: list[dict]) -> list[dict]:
    for panel in panels:
        missing = {"title", "columns", "rows"} - set(panel)
        if missing:
            raise ValueError(f"a report panel needs {sorted(missing)}")
        if any(len(row) != len(panel["columns"]) for row in panel["rows"]):
            raise ValueError(f"panel {panel['title']!r}: every row needs {len(panel['columns'])} cells")
    return [{"note": "", **p} for p in panels]


def render_report(data: dict) -> str:
    """The HTML page for build_report's data."""
    template = resources.files("glassformer.inspect").joinpath(TEMPLATE).read_text(encoding="utf-8")
    # "<" escaped so that no token ("</script>", "<!--") can end the script element early.
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return template.replace(PLACEHOLDER, payload)


def write_report(
    subject: Subject, text: str, out: str | Path, max_steps: int = 20, top_k: int = 5, panels: list[dict] | None = None
) -> Path:
    """Build, render and write the report; returns the path written."""
    out = check_output_file(out, "the report")
    out.write_text(render_report(build_report(subject, text, max_steps, top_k, panels)), encoding="utf-8")
    return out
