"""T5 (Hugging Face `t5`: T5 v1.0, v1.1 and FLAN-T5) <-> glassformer's encoder-decoder model.

T5 is an encoder-decoder of pre-norm layers with RMSNorm (T5's "LayerNorm" has no mean and no
bias) and a final RMSNorm after each stack, no biases anywhere, unscaled embeddings shared by
both stacks, and no position vectors: a learned bias per head and bucket of key-query distance
is added to the self-attention scores (`glassformer.nn.relative_position_bias`; transformers
keeps it in block 0 of each stack, glassformer in the stack itself, both share it across layers).
The scores are not divided by sqrt(d_head) (our attn_scale=false).

Versions: v1.0 (`feed_forward_proj` "relu") ties the LM head to the shared embedding and scales
the decoder output by d_model**-0.5 first (our tie_output and scale_output). v1.1 and FLAN-T5
("gated-gelu": a gated feed-forward network with the tanh approximation of GELU) have a head of
their own and no scaling. transformers 5 always ties the head in its config (it writes
`tie_word_embeddings: true` and says whether to scale in `scale_decoder_outputs`) and unties it
when the file holds a different lm_head.weight; so here the head is untied exactly when the file
holds an lm_head.weight, and the scaling follows `scale_decoder_outputs`, else
`tie_word_embeddings`.

T5EncoderModel (the encoder stack alone, as sentence embedders use it) loads as glassformer's
encoder-only model with the same parts and no head (run kind "encode"), and an encoder-only model
with relative positions exports as it.

Framing: source text </s>, as T5's tokenizer.json post-processor adds it; the decoder starts
with decoder_start_token_id, the pad token <pad> (0) in T5.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import ACTIVATIONS, require, setting

MODEL_TYPE = "t5"
BASE_PREFIX = ""  # T5ForConditionalGeneration keeps shared, encoder and decoder at the top level
HEAD_PREFIXES = ("lm_head.",)
ARCHITECTURES = ("T5ForConditionalGeneration", "T5EncoderModel")
ENCODER = "T5EncoderModel"
# Old files carry a relative bias in the first cross-attention, which transformers never reads.
IGNORED = (r"EncDecAttention\.relative_attention_bias\.weight$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("bos_token", "bos_token_id", None),  # none in T5: the role borrows </s>
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, None),
}
# Our activation -> feed_forward_proj's activation (transformers reads "gated-gelu" as the tanh
# GELU, so an exact gated GELU is written with its other name, gelu_python).
EXPORT_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "silu"}
_SIDES = {"encoder": "src_embed", "decoder": "tgt_embed"}


# Import ------------------------------------------------------------------------------------------
def feed_forward(hf: dict) -> tuple[bool, str]:
    """(gated, our activation) of feed_forward_proj: "relu", "gated-gelu", "gated-silu", ..."""
    proj = hf.get("feed_forward_proj", "relu")
    parts = proj.split("-") if isinstance(proj, str) else []
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise UserError(f"t5 setting not supported: {setting('feed_forward_proj', proj)}")
    activation = "gelu_new" if proj == "gated-gelu" else parts[-1]
    if activation not in ACTIVATIONS:
        raise UserError(f"t5 setting not supported: {setting('feed_forward_proj', proj)} (activation {activation!r})")
    return len(parts) == 2, ACTIVATIONS[activation]


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    encoder_only = ENCODER in (hf.get("architectures") or ()) or not any(k.startswith("decoder.") for k in keys)
    if hf.get("is_encoder_decoder") is False and not encoder_only:
        raise UserError(f"t5 setting not supported: {setting('is_encoder_decoder', False)}")
    gated, activation = feed_forward(hf)
    d_model, n_heads = require(hf, "d_model"), require(hf, "num_heads")
    vocab = require(hf, "vocab_size")
    tied_flag = hf.get("tie_word_embeddings", True) is not False
    scale = hf.get("scale_decoder_outputs")
    pad = hf.get("pad_token_id", 0)
    n_layers = require(hf, "num_layers")
    config = ModelConfig(
        family="encoder-decoder", vocab_size=vocab, d_model=d_model, n_heads=n_heads,
        d_attn=n_heads * (hf.get("d_kv") or d_model // n_heads), d_ff=require(hf, "d_ff"),
        n_layers=n_layers, n_decoder_layers=hf.get("num_decoder_layers") or n_layers,
        max_len=int(hf.get("n_positions") or 512), positions="relative",
        relative_buckets=int(hf.get("relative_attention_num_buckets", 32)),
        relative_max_distance=int(hf.get("relative_attention_max_distance", 128)),
        activation=activation, gated_ffn=gated, norm="pre", final_norm=True, norm_type="rmsnorm",
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-6)), dropout=float(hf.get("dropout_rate", 0.1)),
        scale_embeddings=False, attn_scale=False, bias=False, output_bias=False,
        tie_embeddings=True, tie_output="lm_head.weight" not in keys,
        scale_output=bool(tied_flag if scale is None else scale),
        pad_id=pad if isinstance(pad, int) and 0 <= pad < vocab else 0,
    )
    if encoder_only:
        return config.replace(family="encoder-only", n_decoder_layers=None, tie_output=True, scale_output=False), "encode", []
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    start = hf.get("decoder_start_token_id")
    return {
        "sequence_prefix": [], "sequence_suffix": [ids["end"]], "source_prefix": [], "source_suffix": [ids["end"]],
        "decoder_start": start if isinstance(start, int) else ids["pad"],
    }


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """The shared token table a file may repeat under the stacks' (and a tied head's) names."""
    copies = ["encoder.embed_tokens.weight"]
    if config.family == "encoder-decoder":
        copies.append("decoder.embed_tokens.weight")
    if config.tie_output and config.family == "encoder-decoder":
        copies.append("lm_head.weight")
    return {name: "shared.weight" for name in copies}


def _feed_forward(config: ModelConfig, ours: str, hf: str) -> list[tuple[str, str]]:
    if config.gated_ffn:
        pairs = (("w_gate", "wi_0"), ("w_up", "wi_1"), ("w_down", "wo"))
    else:
        pairs = (("w_1", "wi"), ("w_2", "wo"))
    return [(f"{ours}.ffn.{a}.weight", f"{hf}.DenseReluDense.{b}.weight") for a, b in pairs]


def _attention(ours: str, hf: str) -> list[tuple[str, str]]:
    return [(f"{ours}.w_{x}.weight", f"{hf}.{x}.weight") for x in "qkvo"]


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every tensor keeps its form."""
    encoder_only = config.family == "encoder-only"
    out: list[tuple] = [("embed.token.weight" if encoder_only else "src_embed.token.weight", "shared.weight")]
    stacks = (("encoder", config.n_layers),) if encoder_only else (("encoder", config.n_layers), ("decoder", config.decoder_layers))
    for side, layers in stacks:
        bias = f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        out.append((f"{side}.position_bias.buckets.weight", bias))
        for i in range(layers):
            ours, hf = f"{side}.layers.{i}", f"{side}.block.{i}.layer"
            out += [(f"{ours}.self_attn_residual.norm.weight", f"{hf}.0.layer_norm.weight")]
            out += _attention(f"{ours}.self_attn", f"{hf}.0.SelfAttention")
            ffn = 1
            if side == "decoder":
                out += [(f"{ours}.cross_attn_residual.norm.weight", f"{hf}.1.layer_norm.weight")]
                out += _attention(f"{ours}.cross_attn", f"{hf}.1.EncDecAttention")
                ffn = 2
            out += [(f"{ours}.ffn_residual.norm.weight", f"{hf}.{ffn}.layer_norm.weight")]
            out += _feed_forward(config, ours, f"{hf}.{ffn}")
        out.append((f"{side}.final_norm.weight", f"{side}.final_layer_norm.weight"))
    if not config.tie_output and not encoder_only:
        out.append(("lm_head.proj.weight", "lm_head.weight"))
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a T5 (empty when it is one)."""
    expected = "encode" if config.family == "encoder-only" else "seq2seq"
    problems = [] if kind == expected else [f"kind {kind!r} (T5 exports a sequence-to-sequence model or its encoder alone)"]
    if config.positions != "relative":
        problems.append(f"positions={config.positions!r} (T5's positions are a relative bias)")
    if config.norm != "pre" or not config.use_final_norm or config.norm_type != "rmsnorm":
        problems.append("T5 is pre-norm with RMSNorm and a final RMSNorm after each stack")
    if config.use_qkv_bias or config.use_attn_out_bias or config.use_ffn_bias or config.output_bias:
        problems.append("biases (T5's layers have none)")
    if config.attn_scale:
        problems.append("attn_scale=true (T5 does not divide the scores by sqrt(d_head))")
    if config.scale_embeddings or config.embedding_norm or config.n_segments:
        problems.append("scale_embeddings, embedding_norm or n_segments (T5's embeddings are a bare lookup)")
    if not config.tie_embeddings:
        problems.append("untied embeddings (T5 shares one token table between encoder and decoder)")
    if config.kv_heads != config.n_heads or config.qk_norm:
        problems.append("n_kv_heads or qk_norm (T5 has neither)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    return config


def headless(kind: str) -> bool:
    return False


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for T5ForConditionalGeneration (T5EncoderModel for kind "encode")."""
    if kind == "encode":
        return {
            **_settings(config), "architectures": [ENCODER], "is_encoder_decoder": False, "use_cache": False,
            "tie_word_embeddings": True, "pad_token_id": ids["pad"], "eos_token_id": ids["end"],
        }
    return {
        **_settings(config), "architectures": ["T5ForConditionalGeneration"], "num_decoder_layers": config.decoder_layers,
        "is_encoder_decoder": True, "tie_word_embeddings": config.tie_output, "scale_decoder_outputs": config.scale_output,
        "use_cache": True, "pad_token_id": ids["pad"], "eos_token_id": ids["end"], "decoder_start_token_id": ids["decoder_start"],
    }


def _settings(config: ModelConfig) -> dict:
    """The config.json settings of T5's stacks."""
    activation = EXPORT_ACTIVATIONS[config.activation]
    if config.gated_ffn:
        activation = {"gelu_new": "gelu", "gelu": "gelu_python"}.get(activation, activation)
    proj = f"gated-{activation}" if config.gated_ffn else activation
    return {
        "model_type": MODEL_TYPE, "vocab_size": config.vocab_size,
        "d_model": config.d_model, "d_kv": config.d_head, "d_ff": config.d_ff, "num_heads": config.n_heads,
        "num_layers": config.n_layers, "relative_attention_num_buckets": config.relative_buckets,
        "relative_attention_max_distance": config.relative_max_distance, "feed_forward_proj": proj,
        "dropout_rate": config.dropout, "layer_norm_epsilon": config.norm_eps, "n_positions": config.max_len,
        "initializer_factor": 1.0,
    }
