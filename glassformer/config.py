"""Model configuration: one validated dataclass for all three families, and named presets.

Shape letters used throughout the package, declared once:
B batch, S source length, T target (query) length, H heads, D head width (d_head),
V vocabulary size, d_model model width, A attention width (d_attn = H * D).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from glassformer.errors import ConfigError

FAMILIES = ("encoder-decoder", "encoder-only", "decoder-only")
NORMS = ("post", "pre")
NORM_TYPES = ("layernorm", "rmsnorm")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
POSITIONS = ("sinusoidal", "learned", "rotary", "relative")
ROPE_TYPES = ("default", "llama3")
HEADS = ("none", "mlm", "classify", "tag", "qa")
# A decoder-only model may end in a classifier or a span head instead of its LM head (GPT-2's and
# LLaMA's sequence and token classifiers and question answering), an encoder-decoder in a sequence
# classifier or a span head on its decoder (BART's).
HEADS_OF_FAMILY = {
    "encoder-only": HEADS, "decoder-only": ("none", "classify", "tag", "qa"), "encoder-decoder": ("none", "classify", "qa"),
}
# The pooler's nonlinearity: BERT's dense + tanh, or DistilBERT's pre_classifier + ReLU.
POOLER_ACTIVATIONS = ("tanh", "relu")
# Fields older run folders may hold that no longer change the model: fused Q/K/V is now applied
# from outside by `glassformer.speed`.
RETIRED_FIELDS = ("fused_qkv",)


@dataclass
class ModelConfig:
    """Every dimension and switch of a Transformer; the family picks which parts are built."""

    family: str = "encoder-decoder"
    """"encoder-decoder" (the paper), "encoder-only" (BERT) or "decoder-only" (GPT)."""
    vocab_size: int = 1000
    """Source vocabulary, or the only one when the vocabulary is shared."""
    tgt_vocab_size: int | None = None
    """Target vocabulary of an encoder-decoder with separate vocabularies; None means shared."""
    d_model: int = 512
    """Width of the residual stream and of the embeddings."""
    n_heads: int = 8
    d_attn: int | None = None
    """Width of Q, K and V (all heads together); None means d_model. Article A uses 512 in a 768 model."""
    d_ff: int = 2048
    """Hidden width of the position-wise feed-forward network."""
    n_layers: int = 6
    """Encoder layers (encoder-decoder, encoder-only) or decoder layers (decoder-only)."""
    n_decoder_layers: int | None = None
    """Decoder layers of an encoder-decoder; None means n_layers."""
    max_len: int = 512
    """Longest sequence the positions cover."""
    positions: str = "sinusoidal"
    """"sinusoidal" (the paper), "learned" (GPT-2, BERT), "rotary" (LLaMA) or "relative" (T5 and its
    encoder alone: a learned bias per head and bucket of key-query distance, added to the attention scores)."""
    activation: str = "relu"
    norm: str = "post"
    """"post": LayerNorm(x + sublayer(x)) as in the paper and BERT; "pre": x + sublayer(LayerNorm(x)) as GPT-2."""
    final_norm: bool | None = None
    """A LayerNorm after each stack; None means True for pre-norm, False for post-norm."""
    norm_eps: float = 1e-5
    norm_type: str = "layernorm"
    """"layernorm" (the paper's (x - mean) / std * g + b) or "rmsnorm" (x / rms(x) * g, LLaMA, T5)."""
    dropout: float = 0.1
    attn_dropout: float | None = None
    """Dropout on attention probabilities; None means `dropout`."""
    scale_embeddings: bool = True
    """Multiply token embeddings by sqrt(d_model), as the paper does."""
    bias: bool = True
    """Biases in the attention and feed-forward linear layers (the three below can override it)."""
    qkv_bias: bool | None = None
    """Biases on Wq, Wk, Wv; None means `bias` (Qwen2 has them, LLaMA not)."""
    attn_out_bias: bool | None = None
    """A bias on the attention output Wo; None means `bias`."""
    ffn_bias: bool | None = None
    """Biases in the feed-forward layers; None means `bias`."""
    n_kv_heads: int | None = None
    """Key/value heads, shared by groups of n_heads / n_kv_heads query heads (grouped-query
    attention; 1 is multi-query); None means n_heads, the paper's multi-head attention."""
    gated_ffn: bool = False
    """Gated feed-forward (act(x W_gate) * x W_up) W_down: SwiGLU with activation "silu" (LLaMA),
    gated GELU with "gelu"/"gelu_tanh" (T5 v1.1)."""
    rope_theta: float = 10000.0
    """Base of the rotary frequencies theta_i = rope_theta^(-2i/D) (positions="rotary")."""
    rope_scaling: dict | None = None
    """Rotary frequency scaling as config.json writes it: None, or {"rope_type": "llama3",
    "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}."""
    sliding_window: int | None = None
    """Decoder self-attention sees only the last `sliding_window` keys (Mistral); None: all."""
    relative_buckets: int = 32
    """Buckets of key-query distance with positions="relative" (T5's relative_attention_num_buckets)."""
    relative_max_distance: int = 128
    """Distances from this one on share the last bucket (T5's relative_attention_max_distance)."""
    attn_scale: bool = True
    """Divide the attention scores by sqrt(d_head) (the paper); T5 does not, its Wq absorbs the factor."""
    scale_output: bool = False
    """Multiply the decoder output by d_model**-0.5 before the output projection (T5 v1.0, whose
    projection is the tied token embedding)."""
    qk_norm: bool = False
    """RMSNorm over each head's queries and keys before the rotation (Qwen3)."""
    output_bias: bool = False
    """A bias in the pre-softmax projection."""
    tie_embeddings: bool = True
    """Encoder-decoder: share the source and target embedding (needs a shared vocabulary)."""
    tie_output: bool = True
    """Share the pre-softmax projection with the (target) token embedding."""
    n_segments: int = 0
    """Segment (token-type) embeddings, BERT uses 2; 0 means none."""
    embedding_norm: bool = False
    """LayerNorm (and dropout) right after the embedding sum, as BERT does."""
    pooler: bool = False
    """Encoder-only: dense + pooler_activation on the first token (BERT's pooler)."""
    pooler_activation: str = "tanh"
    """The pooler's nonlinearity: "tanh" (BERT's pooler) or "relu" (DistilBERT's pre_classifier)."""
    head: str = "none"
    """Task head: "none", "mlm", "classify" (pooled first token), "tag" (per token) or "qa" (answer
    start/end per token) on an encoder; on a decoder-only model "none" (the LM head), "classify"
    (the last real token), "tag" or "qa"; on an encoder-decoder "none", "classify" (the decoder's
    last real position, BART) or "qa" (start/end per position of the decoder, BART)."""
    n_labels: int = 0
    """Classes of the classify/tag head."""
    pad_id: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # Derived sizes ---------------------------------------------------------------------------
    @property
    def attn_width(self) -> int:
        return self.d_model if self.d_attn is None else self.d_attn

    @property
    def d_head(self) -> int:
        return self.attn_width // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def kv_width(self) -> int:
        """Width of K and V (all kv heads together)."""
        return self.kv_heads * self.d_head

    @property
    def use_qkv_bias(self) -> bool:
        return self.bias if self.qkv_bias is None else self.qkv_bias

    @property
    def use_attn_out_bias(self) -> bool:
        return self.bias if self.attn_out_bias is None else self.attn_out_bias

    @property
    def use_ffn_bias(self) -> bool:
        return self.bias if self.ffn_bias is None else self.ffn_bias

    @property
    def target_vocab_size(self) -> int:
        return self.vocab_size if self.tgt_vocab_size is None else self.tgt_vocab_size

    @property
    def decoder_layers(self) -> int:
        return self.n_layers if self.n_decoder_layers is None else self.n_decoder_layers

    @property
    def use_final_norm(self) -> bool:
        return self.norm == "pre" if self.final_norm is None else self.final_norm

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout

    # Validation --------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError naming the offending value and what was expected."""
        _one_of("family", self.family, FAMILIES)
        _one_of("norm", self.norm, NORMS)
        _one_of("activation", self.activation, ACTIVATIONS)
        _one_of("positions", self.positions, POSITIONS)
        _one_of("norm_type", self.norm_type, NORM_TYPES)
        _one_of("head", self.head, HEADS)
        _one_of("pooler_activation", self.pooler_activation, POOLER_ACTIVATIONS)
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "n_layers", "max_len", "relative_buckets"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("tgt_vocab_size", "d_attn", "n_decoder_layers", "n_kv_heads", "sliding_window"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be a positive integer or null, got {value}")
        if self.attn_width % self.n_heads != 0:
            raise ConfigError(
                f"d_attn={self.attn_width} is not divisible by n_heads={self.n_heads}: "
                "each head needs an equal slice of the attention width"
            )
        if self.n_heads % self.kv_heads != 0:
            raise ConfigError(
                f"n_kv_heads={self.kv_heads} does not divide n_heads={self.n_heads}: "
                "each key/value head serves an equal group of query heads"
            )
        self._validate_rotary()
        self._validate_relative()
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.family == "encoder-decoder" and self.tie_embeddings and (
            self.tgt_vocab_size not in (None, self.vocab_size)
        ):
            raise ConfigError(
                f"tie_embeddings needs one shared vocabulary, got vocab_size={self.vocab_size} "
                f"and tgt_vocab_size={self.tgt_vocab_size}"
            )
        if self.head in ("classify", "tag") and self.n_labels < 1:
            raise ConfigError(f"head={self.head!r} needs n_labels >= 1, got {self.n_labels}")
        if self.head not in HEADS_OF_FAMILY[self.family]:
            allowed = ", ".join(repr(h) for h in HEADS_OF_FAMILY[self.family])
            raise ConfigError(f"head={self.head!r} is not a head of the {self.family} family (it has {allowed})")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(f"pad_id={self.pad_id} is outside the vocabulary of {self.vocab_size}")

    def _validate_relative(self) -> None:
        if self.positions == "relative" and self.family == "decoder-only":
            raise ConfigError(
                f"positions='relative' is built for the encoder-decoder family (T5) and its encoder alone, not {self.family}"
            )
        if self.relative_buckets < 4:
            raise ConfigError(f"relative_buckets must be at least 4 (two directions, exact and logarithmic), got {self.relative_buckets}")
        if self.relative_max_distance <= self.relative_buckets // 2:
            raise ConfigError(
                f"relative_max_distance={self.relative_max_distance} must exceed half of "
                f"relative_buckets={self.relative_buckets}: the exact buckets cover the distances below that"
            )

    def _validate_rotary(self) -> None:
        if self.positions == "rotary" and self.family != "decoder-only":
            raise ConfigError(f"positions='rotary' is built for the decoder-only family, not {self.family}")
        if self.positions == "rotary" and self.d_head % 2:
            raise ConfigError(f"rotary positions rotate pairs of dimensions: d_head={self.d_head} must be even")
        if self.sliding_window is not None and self.family != "decoder-only":
            raise ConfigError(f"sliding_window is built for the decoder-only family, not {self.family}")
        if not self.rope_theta > 0:
            raise ConfigError(f"rope_theta must be positive, got {self.rope_theta}")
        if self.rope_scaling is None:
            return
        if not isinstance(self.rope_scaling, dict):
            raise ConfigError(f"rope_scaling must be an object or null, got {self.rope_scaling!r}")
        kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "default"))
        _one_of("rope_scaling.rope_type", kind, ROPE_TYPES)
        if kind == "llama3":
            needed = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
            missing = [key for key in needed if not isinstance(self.rope_scaling.get(key), (int, float))]
            if missing:
                raise ConfigError(f"rope_scaling of type llama3 needs number(s): {', '.join(missing)}")

    # Serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"model config is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError("model config must be a JSON object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(allowed)}")


def _paper(**changes) -> ModelConfig:
    base = dict(
        family="encoder-decoder", vocab_size=37000, d_model=512, n_heads=8, d_ff=2048, n_layers=6,
        positions="sinusoidal", activation="relu", norm="post", dropout=0.1, scale_embeddings=True,
        tie_embeddings=True, tie_output=True, output_bias=False,
    )
    base.update(changes)
    return ModelConfig(**base)


def _small(family: str, **changes) -> ModelConfig:
    base = dict(
        family=family, vocab_size=1000, d_model=128, n_heads=4, d_ff=512, n_layers=3, max_len=128,
        positions="sinusoidal", activation="relu", norm="pre", dropout=0.1,
    )
    base.update(changes)
    return ModelConfig(**base)


_GPT2_STYLE = dict(positions="learned", activation="gelu_tanh", norm="pre", scale_embeddings=False)
# LLaMA's parts: RMSNorm before each sublayer, rotary positions, SwiGLU, no biases, untied head.
_LLAMA_STYLE = dict(
    family="decoder-only", positions="rotary", activation="silu", gated_ffn=True, norm="pre", norm_type="rmsnorm",
    scale_embeddings=False, bias=False, tie_output=False, dropout=0.0,
)


# T5's parts (Raffel et al. 2020): RMSNorm before each sublayer and after each stack, no biases,
# unscaled embeddings, a relative position bias per head in place of position vectors, and
# attention scores without the 1/sqrt(d_head). v1.0 ties the output to the shared embedding and
# scales the decoder output by d_model**-0.5; v1.1 and FLAN-T5 untie it and use gated GELU.
_T5_STYLE = dict(
    family="encoder-decoder", positions="relative", norm="pre", norm_type="rmsnorm", norm_eps=1e-6, bias=False,
    scale_embeddings=False, attn_scale=False, tie_embeddings=True, output_bias=False, pad_id=0,
)


def _t5(**changes) -> ModelConfig:
    return ModelConfig(**{**_T5_STYLE, "activation": "relu", "tie_output": True, "scale_output": True, **changes})


def _llama(**changes) -> ModelConfig:
    return ModelConfig(**{**_LLAMA_STYLE, "norm_eps": 1e-5, **changes})


PRESETS: dict[str, ModelConfig] = {
    # The paper's Table 3 models, with the shared 37,000-token BPE vocabulary.
    "paper-base": _paper(),
    "paper-big": _paper(d_model=1024, n_heads=16, d_ff=4096, dropout=0.3),
    # GPT-2 small (124M) and BERT-base (110M) as published.
    "gpt2-small": ModelConfig(
        family="decoder-only", vocab_size=50257, d_model=768, n_heads=12, d_ff=3072, n_layers=12,
        max_len=1024, positions="learned", activation="gelu_tanh", norm="pre", dropout=0.1,
        scale_embeddings=False, tie_output=True, output_bias=False, pad_id=0,
    ),
    "bert-base": ModelConfig(
        family="encoder-only", vocab_size=30522, d_model=768, n_heads=12, d_ff=3072, n_layers=12,
        max_len=512, positions="learned", activation="gelu", norm="post", norm_eps=1e-12,
        dropout=0.1, scale_embeddings=False, n_segments=2, embedding_norm=True, pooler=True,
    ),
    # Marian's opus-mt-en-de (English -> German): the paper's base model with a 58,101-piece
    # vocabulary, the swish (silu) activation, <pad> last. It imports from and exports to Marian.
    "opus-mt-en-de": _paper(vocab_size=58101, activation="silu", attn_dropout=0.0, pad_id=58100),
    # LLaMA-family models as published (Touvron et al. 2023; Meta 2024; Zhang et al. 2024; Qwen 2024).
    "llama2-7b": _llama(vocab_size=32000, d_model=4096, n_heads=32, d_ff=11008, n_layers=32, max_len=4096),
    "llama3-8b": _llama(
        vocab_size=128256, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336, n_layers=32, max_len=8192,
        rope_theta=500000.0,
    ),
    "tinyllama-1.1b": _llama(vocab_size=32000, d_model=2048, n_heads=32, n_kv_heads=4, d_ff=5632, n_layers=22, max_len=2048),
    "qwen2.5-0.5b": _llama(
        vocab_size=151936, d_model=896, n_heads=14, n_kv_heads=2, d_ff=4864, n_layers=24, max_len=32768,
        rope_theta=1000000.0, norm_eps=1e-6, qkv_bias=True, tie_output=True,
    ),
    # T5 v1.0 as published (Raffel et al. 2020), 32,128-piece vocabulary, 512 tokens (its tokenizer's limit).
    "t5-small": _t5(vocab_size=32128, d_model=512, n_heads=8, d_ff=2048, n_layers=6, max_len=512, dropout=0.1),
    "t5-base": _t5(vocab_size=32128, d_model=768, n_heads=12, d_ff=3072, n_layers=12, max_len=512, dropout=0.1),
    # The articles' worked examples.
    "article-a": _paper(vocab_size=10000, d_model=768, d_attn=512, n_heads=8, max_len=512),
    "article-b": _paper(vocab_size=32, d_model=6, n_heads=2, d_ff=12, n_layers=1, max_len=64, dropout=0.0),
    # Small models for the built-in tasks and the tests (vocabularies are set from the tokenizer).
    "tiny-seq2seq": _small("encoder-decoder", d_model=64, n_heads=4, d_ff=128, n_layers=2, dropout=0.0),
    # The decoder-only presets have GPT-2's architecture, so they export to the GPT-2 layout.
    "tiny-lm": _small("decoder-only", d_model=64, n_heads=4, d_ff=128, n_layers=2, dropout=0.0, **_GPT2_STYLE),
    "tiny-encoder": _small("encoder-only", d_model=64, n_heads=4, d_ff=128, n_layers=2, dropout=0.0),
    "small-seq2seq": _small("encoder-decoder", n_layers=2, dropout=0.0),
    "small-lm": _small("decoder-only", dropout=0.1, **_GPT2_STYLE),
    "small-encoder": _small("encoder-only", norm="post", dropout=0.1),
    # small-encoder in BERT's layout (unscaled embeddings with a LayerNorm, a pooler for
    # classifying), so that its runs export to Hugging Face's BERT classes. The encoder tasks learn
    # more slowly with it at their default settings (toy-qa, 400 steps: exact match 66.5%, against
    # 97.5% with small-encoder on the same machine), so it is not their default.
    "small-bert": _small(
        "encoder-only", norm="post", dropout=0.1, scale_embeddings=False, embedding_norm=True, pooler=True,
    ),
    # LLaMA's architecture at the sizes of tiny-lm and small-lm: 4 query heads sharing 2 key/value
    # heads, d_ff about 2/3 of 4 * d_model (three matrices in place of two), rounded up to 8.
    "tiny-llama": _llama(vocab_size=1000, d_model=64, n_heads=4, n_kv_heads=2, d_ff=176, n_layers=2, max_len=128),
    # T5 v1.1's layout (gated GELU, untied output, no output scaling) at the sizes of tiny-seq2seq
    # and small-seq2seq, d_ff about 2/3 of 4 * d_model for the three matrices of the gated network.
    "tiny-t5": _t5(
        vocab_size=1000, d_model=64, n_heads=4, d_ff=176, n_layers=2, max_len=128, dropout=0.0,
        activation="gelu_tanh", gated_ffn=True, tie_output=False, scale_output=False,
    ),
    "small-t5": _t5(
        vocab_size=1000, d_model=128, n_heads=4, d_ff=344, n_layers=2, max_len=128, dropout=0.0,
        activation="gelu_tanh", gated_ffn=True, tie_output=False, scale_output=False,
    ),
    "small-llama": _llama(vocab_size=1000, d_model=128, n_heads=4, n_kv_heads=2, d_ff=344, n_layers=3, max_len=128),
}


def get_preset(name: str) -> ModelConfig:
    """The named preset (a fresh copy), or a ConfigError listing the names."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])
