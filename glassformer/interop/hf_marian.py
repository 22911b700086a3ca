"""Marian (Hugging Face `marian`, the opus-mt models) <-> glassformer's encoder-decoder model.

Marian is the paper's Transformer as Marian-NMT trains it: post-norm, no final LayerNorm, no
LayerNorm on the embeddings, token embeddings scaled by sqrt(d_model) (`scale_embedding`),
sinusoidal positions, one token table for encoder, decoder and output, and a fixed output bias
(`final_logits_bias`). opus-mt models use the "swish" activation (our silu).

Positions: Marian's sinusoids are the paper's, with the coordinates in another order: all the
sines first (coordinate i < d/2 is the paper's 2i), then all the cosines (d/2 + i is 2i + 1).
transformers computes them itself and does not read them from the file. So the import reorders
the d_model coordinates of every residual-stream tensor into the paper's order (see
hf_seq2seq.Basis) and our sinusoidal table then adds exactly Marian's values; the export reorders
them back. The model computes the same logits; the hidden states glassformer shows are
transformers' with their coordinates reordered. Any glassformer model that is post-norm with
sinusoidal positions and no embedding norm exports as Marian (the paper's own setup among them).

Framing: source text </s> (Marian adds no start token); the decoder starts with
decoder_start_token_id, which is <pad> in opus-mt.

Tokenizer: a folder without tokenizer.json (the opus-mt folders) holds source.spm and target.spm,
SentencePiece models of each language, and vocab.json, the ids of their pieces joined. Each model
becomes a `tokenizers` tokenizer numbered by vocab.json (glassformer.text.sentencepiece_file), the
source one for source text, the target one for target text, each ending a text with </s>, as
transformers' MarianTokenizer does; the `sentencepiece` library is not needed. Text holding a run of
two or more characters its model lacks can differ: MarianTokenizer looks such a run up in
vocab.json as one piece, here each character the joint vocabulary has keeps its own id.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from tokenizers import AddedToken, processors
from tokenizers import Tokenizer as HFTokenizer

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import declared_tokens, require, setting
from glassformer.interop.hf_seq2seq import (
    Basis,
    common_problems,
    layer_rules,
    output_bias_rule,
    read_seq2seq_config,
    seq2seq_framing,
    shared_aliases,
    write_seq2seq_config,
)

MODEL_TYPE = "marian"
BASE_PREFIX = "model."
HEAD_PREFIXES = ("lm_head.", "final_logits_bias")  # names outside the base model
ARCHITECTURES = ("MarianMTModel", "MarianModel")
# Sinusoids some files carry though transformers recomputes them; fairseq leftovers.
IGNORED = (r"(^|\.)embed_positions\.weight$", r"(^|\.)(encoder|decoder)\.version$")
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("bos_token", "bos_token_id", None),  # none in opus-mt: the role borrows </s>
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, None),
}


SOURCE_SPM, TARGET_SPM, VOCAB_FILE = "source.spm", "target.spm", "vocab.json"
LANGUAGE_CODE = re.compile(r"^>>.+<<$")  # >>fra<< picks the target language of a multilingual model


def raw_tokenizers(path: Path) -> tuple[tuple[str, HFTokenizer], tuple[str, HFTokenizer]] | None:
    """((file, source tokenizer), (file, target tokenizer)) from source.spm, target.spm and
    vocab.json (one object for both when the two models are the same file); None without them."""
    from glassformer.text.sentencepiece_file import read_sentencepiece, sentencepiece_tokenizer

    if not (path / SOURCE_SPM).is_file():
        return None
    for name in (TARGET_SPM, VOCAB_FILE):
        if not (path / name).is_file():
            raise UserError(f"{SOURCE_SPM} without {name} (a Marian folder without tokenizer.json needs both)")
    if (path / "target_vocab.json").is_file():
        raise UserError("separate source and target vocabularies (target_vocab.json) are not supported")
    try:
        vocab = json.loads((path / VOCAB_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{VOCAB_FILE} is not valid JSON ({error})") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise UserError(f"{VOCAB_FILE} is not an object of piece -> id")
    eos = declared_tokens(path).get("eos_token", "</s>")
    if eos not in vocab:
        raise UserError(f"{VOCAB_FILE} lacks the end token {eos!r}")

    def build(name: str) -> tuple[str, HFTokenizer]:
        hf = sentencepiece_tokenizer(read_sentencepiece(path / name), vocab, name)
        specials = [t for t in (eos, "<pad>", "<unk>") if t in vocab]
        hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        hf.add_tokens([AddedToken(t, normalized=False) for t in vocab if LANGUAGE_CODE.match(t)])
        hf.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {eos}:0", pair=f"$A:0 $B:0 {eos}:0", special_tokens=[(eos, vocab[eos])],
        )
        return name, hf

    source = build(SOURCE_SPM)
    same = (path / SOURCE_SPM).read_bytes() == (path / TARGET_SPM).read_bytes()
    return source, source if same else build(TARGET_SPM)


def paper_order(d_model: int) -> torch.Tensor:
    """For each of Marian's coordinates, the paper's: [0, 2, 4, ..., 1, 3, 5, ...]."""
    return torch.cat([torch.arange(0, d_model, 2), torch.arange(1, d_model, 2)])


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    unsupported = []
    vocab = require(hf, "vocab_size")
    if hf.get("decoder_vocab_size") not in (None, vocab):
        unsupported.append(setting("decoder_vocab_size", hf["decoder_vocab_size"]))
    if not hf.get("share_encoder_decoder_embeddings", True):
        unsupported.append(setting("share_encoder_decoder_embeddings", False))
    d_model = require(hf, "d_model")
    if d_model % 2:
        unsupported.append(setting("d_model", d_model) + " (odd)")
    config = read_seq2seq_config(
        hf, keys, MODEL_TYPE, None, unsupported, d_model=d_model, positions="sinusoidal", norm="post", final_norm=False,
        embedding_norm=False,
    )
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    return seq2seq_framing(ids, hf, [], ids["pad"])


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    return shared_aliases()


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s), every residual-stream tensor reordered (module docstring)."""
    basis = Basis(paper_order(config.d_model))
    out = [basis.columns("src_embed.token.weight", "model.shared.weight"), *layer_rules(config, basis)]
    if config.output_bias:
        out.append(output_bias_rule())
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a Marian model (empty when it is one)."""
    problems = common_problems(config, kind, "Marian")
    if config.norm != "post" or config.use_final_norm:
        problems.append("Marian is post-norm without a final LayerNorm")
    if config.embedding_norm:
        problems.append("embedding_norm=true (Marian has no LayerNorm on the embeddings)")
    if config.positions != "sinusoidal":
        problems.append("learned positions (Marian's are sinusoidal)")
    if config.d_model % 2:
        problems.append(f"odd d_model={config.d_model} (Marian's sinusoids pair the coordinates)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """The exported model always has final_logits_bias (zeros if we had none)."""
    return config.replace(output_bias=True)


def headless(kind: str) -> bool:
    return False


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for MarianMTModel."""
    document = write_seq2seq_config(config, ids, MODEL_TYPE, "MarianMTModel")
    return {**document, "decoder_vocab_size": config.vocab_size, "share_encoder_decoder_embeddings": True, "bos_token_id": None}
