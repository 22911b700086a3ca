"""The architecture diagram of the report: Figure 1 drawn from what a model really ran.

The boxes come from the HookPoints that fired in one recorded forward pass, in firing order, so
the drawing follows the model and not a picture of the paper: a pre-norm layer shows its
LayerNorm before each sublayer and the residual add after it, a post-norm layer shows "Add &
Norm" after the sublayer, cross-attention appears only where the decoder has it, and an
imported model's extra parts (an embedding LayerNorm, a final norm) appear where they run.
Every layer of a stack has the same boxes, so a stack is drawn once with its layer count and
each box names its tensors by a layer-independent suffix.
"""

from __future__ import annotations

import re

from torch import nn

from glassformer.inspect.recorder import Record

_LAYER = re.compile(r"^(?P<stack>encoder|decoder)\.layers\.(?P<layer>\d+)\.(?P<owner>.+)$")

_EMBED_LABELS = {
    "hook_tokens": ("token embedding", "embed"),
    "hook_positions": ("positional encoding", "embed"),
    "hook_sum": ("⊕ embedding + position", "embed"),
    "hook_norm": ("embedding LayerNorm", "norm"),
}


def _owner(name: str) -> tuple[str, str]:
    owner, _, hook = name.rpartition(".")
    return owner, hook


def _column(name: str, family: str) -> str:
    if family != "encoder-decoder":
        return "encoder" if family == "encoder-only" else "decoder"
    return "encoder" if name.startswith(("src_embed.", "encoder.")) else "decoder"


def _layer_box(stack: str, owner: str, hooks: list[str]) -> tuple[str, str]:
    """(label, kind) of one box inside a layer."""
    if owner == "self_attn":
        return ("masked multi-head self-attention" if stack == "decoder" else "multi-head self-attention"), "attn"
    if owner == "cross_attn":
        return "multi-head cross-attention (queries: decoder, keys/values: encoder output)", "attn"
    if owner.endswith("_residual"):
        if hooks == ["hook_norm"]:
            return "LayerNorm", "norm"
        if hooks == ["hook_sum"]:
            return "add (residual)", "norm"
        return "add & norm", "norm"
    if owner == "ffn":
        return "feed-forward network", "ffn"
    return owner.replace("_", " "), ""


def _outer_box(model: nn.Module, owner: str, hook: str, what: str) -> tuple[str, str]:
    """(label, kind) of a box outside the layers."""
    if owner.endswith("embed"):
        label, kind = _EMBED_LABELS.get(hook, (what, "embed"))
        if hook == "hook_tokens" and owner == "tgt_embed":
            label = "output embedding (decoder input)"
        if hook == "hook_positions" and getattr(model.config, "positions", "") == "learned":
            label = "learned positions"
        return label, kind
    if owner in ("encoder", "decoder") and hook == "hook_out":
        stack = getattr(model, owner)
        final = getattr(stack, "final_norm", None) is not None
        return (f"final LayerNorm → {owner} output" if final else f"{owner} output"), ("norm" if final else "")
    if hook == "hook_logits":
        return "linear (output projection)", "out"
    if hook == "hook_probs" and not owner.endswith("attn"):
        return "softmax", "out"
    return what, "out"


def build_diagram(model: nn.Module, records: list[Record]) -> dict:
    """The diagram of one recorded forward pass (a single step with every HookPoint).

    Returns:
        {"columns": [{"name": "encoder" | "decoder", "parts": [...]}]}, where a part is a box
        {"id", "label", "kind", "tensors": [hook names]} or a stack {"stack": "encoder",
        "n_layers": N, "boxes": [boxes whose tensors are suffixes after "<stack>.layers.<i>."]}.
    """
    family = model.config.family
    columns: dict[str, list[dict]] = {}
    stacks: dict[str, dict] = {}
    seen_layer_zero: set[str] = set()
    for r in records:
        column = columns.setdefault(_column(r.name, family), [])
        match = _LAYER.match(r.name)
        if match:
            stack, layer, rest = match["stack"], int(match["layer"]), match["owner"]
            owner, hook = _owner(rest)
            if stack not in stacks:
                stacks[stack] = {"stack": stack, "n_layers": len(getattr(model, stack).layers), "boxes": []}
                column.append(stacks[stack])
            if layer != 0:
                continue  # every layer has layer 0's boxes
            boxes = stacks[stack]["boxes"]
            if boxes and boxes[-1]["owner"] == owner and rest not in boxes[-1]["tensors"]:
                boxes[-1]["tensors"].append(rest)
            else:
                boxes.append({"owner": owner, "tensors": [rest]})
            seen_layer_zero.add(rest)
            continue
        owner, hook = _owner(r.name)
        label, kind = _outer_box(model, owner, hook, r.what)
        column.append({"id": r.name, "label": label, "kind": kind, "tensors": [r.name]})
    for stack in stacks.values():
        for i, box in enumerate(stack["boxes"]):
            hooks = [_owner(t)[1] for t in box["tensors"]]
            box["label"], box["kind"] = _layer_box(stack["stack"], box["owner"], hooks)
            box["id"] = f"{stack['stack']}.{i}.{box['owner']}"
    order = ["encoder", "decoder"]
    return {"columns": [{"name": name, "parts": columns[name]} for name in order if name in columns]}
