"""Starting from another run's weights (--init): what carries over, what is frozen, what is created fresh."""

from __future__ import annotations

from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.run_folder import Run, unique_state
from glassformer.train.config import TrainConfig

HEAD_PREFIXES = ("head.", "lm_head.")
BODY_FIELDS = ("d_model", "attn_width", "n_heads", "d_ff", "n_layers", "decoder_layers")


def is_head(name: str) -> bool:
    """Whether a parameter belongs to the task head rather than the body."""
    return name.startswith(HEAD_PREFIXES)


def freeze(model: nn.Module, config: TrainConfig) -> list[str]:
    """Turn off gradients for the embeddings and/or the first layers; returns the frozen names."""
    frozen = []
    for name, parameter in model.named_parameters():
        embedding = "embed." in name and not is_head(name)
        layer = int(name.split(".layers.")[1].split(".")[0]) if ".layers." in name else None
        if (config.freeze_embeddings and embedding) or (layer is not None and layer < config.freeze_layers):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def check_same_body(init: Run, preset: ModelConfig, name: str) -> None:
    """A preset given with --init must describe the same body, or no weight could carry over."""
    fields = BODY_FIELDS if init.config.family == "encoder-decoder" else BODY_FIELDS[:-1]
    differ = [f for f in fields if getattr(init.config, f) != getattr(preset, f)]
    if differ:
        ours = ", ".join(f"{f}={getattr(init.config, f)}" for f in differ)
        theirs = ", ".join(f"{f}={getattr(preset, f)}" for f in differ)
        raise UserError(f"--init {init.path} has {ours} but preset {name!r} has {theirs}: its weights cannot carry over")


def carry_over(model: nn.Module, init: Run, same_head: bool) -> dict[str, list[str]]:
    """Copy the fine-tuned run's weights into model where names and shapes fit.

    Args:
        same_head: the head means the same thing (same kind and labels), so it is kept too.
    Returns:
        the tensor names loaded, created fresh and dropped.
    """
    source = unique_state(init.model)
    own = unique_state(model)
    loaded, created = {}, []
    for name, tensor in own.items():
        fits = name in source and source[name].shape == tensor.shape
        if fits and (same_head or not is_head(name)):
            loaded[name] = source[name]
        else:
            created.append(name)
    model.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "created": created, "dropped": sorted(set(source) - set(loaded))}
