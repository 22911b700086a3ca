"""Random Hugging Face models and the same weights loaded into glassformer, for fair comparisons.

The HF model is built with `transformers`, saved to a temporary folder with a small word-level
tokenizer (the folder loader needs one), and loaded back through `glassformer.load.load_model`,
which maps the weights by name. Both sides then hold the very same numbers.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from glassformer.config import get_preset
from glassformer.load import load_model
from glassformer.speed import optimize_for_inference

VOCAB = 8000
GPT2_SIZES = dict(n_embd=384, n_layer=6, n_head=6, n_positions=256)
GPT2_SMALL_VOCAB = 50257
GPT2_SMALL_SIZES = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024)  # gpt2-small, 124M parameters
BART_SIZES = dict(d_model=256, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024)
BART_BOS, BART_PAD, BART_EOS = 0, 1, 2


def write_tokenizer(path: Path, specials: list[str], size: int) -> None:
    """A word-level tokenizer.json: the specials first, then placeholder words up to size ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), size)})
    unk = next((t for t in specials if "unk" in t), specials[0])
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path))


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def gpt2_config(dropout: float, sizes: dict | None = None, vocab: int = VOCAB):
    transformers = _quiet_transformers()
    return transformers.GPT2Config(
        vocab_size=vocab, **(sizes or GPT2_SIZES), activation_function="gelu_new", resid_pdrop=dropout,
        embd_pdrop=dropout, attn_pdrop=dropout, layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0,
        pad_token_id=0,
    )


def gpt2_pair(
    device: str, dropout: float = 0.0, sizes: dict | None = None, vocab: int = VOCAB
) -> tuple[nn.Module, nn.Module]:
    """(glassformer DecoderOnly, HF GPT2LMHeadModel with sdpa attention), same weights.

    Args:
        sizes: n_embd, n_layer, n_head, n_positions (default GPT2_SIZES, 6 layers 384 wide).
    """
    transformers = _quiet_transformers()
    sizes = sizes or GPT2_SIZES
    torch.manual_seed(0)
    peer = transformers.GPT2LMHeadModel._from_config(gpt2_config(dropout, sizes, vocab), attn_implementation="sdpa")
    with tempfile.TemporaryDirectory() as folder:
        peer.save_pretrained(folder)
        write_tokenizer(Path(folder) / "tokenizer.json", ["<|endoftext|>"], vocab)
        ours = load_model(folder).model
    # The architecture the brief asks for: gpt2-small's settings at these sizes.
    expected = get_preset("gpt2-small").replace(
        vocab_size=vocab, d_model=sizes["n_embd"], n_heads=sizes["n_head"], d_ff=4 * sizes["n_embd"],
        n_layers=sizes["n_layer"], max_len=sizes["n_positions"], dropout=dropout, attn_dropout=dropout,
        final_norm=True,
    )
    assert ours.config == expected, f"imported config differs from the preset: {ours.config} vs {expected}"
    return ours.to(device), peer.to(device)


def bart_pair(device: str, max_len: int = 512) -> tuple[nn.Module, nn.Module]:
    """(glassformer EncoderDecoder, HF BartForConditionalGeneration), same weights, dropout 0."""
    transformers = _quiet_transformers()
    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=VOCAB, **BART_SIZES, max_position_embeddings=max_len, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, activation_function="gelu", bos_token_id=BART_BOS, pad_token_id=BART_PAD,
        eos_token_id=BART_EOS, decoder_start_token_id=BART_EOS, forced_bos_token_id=None,
        forced_eos_token_id=None, scale_embedding=False, init_std=0.2,
    )
    peer = transformers.BartForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    with tempfile.TemporaryDirectory() as folder:
        peer.save_pretrained(folder)
        write_tokenizer(Path(folder) / "tokenizer.json", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], VOCAB)
        ours = load_model(folder).model
    return ours.to(device).eval(), peer.to(device).eval()


def optimized(model: nn.Module, **switches) -> nn.Module:
    """A copy of model prepared for inference as the decoding commands prepare it (same weights)."""
    twin = copy.deepcopy(model)
    optimize_for_inference(twin, **switches)
    return twin


# LLaMA-shaped: 6 layers, 384 wide, 6 query heads sharing 2 key/value heads, SwiGLU (d_ff 1024,
# 2/3 of 4 * 384), RoPE, RMSNorm, no biases, untied head.
LLAMA_SIZES = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=2,
                   intermediate_size=1024, max_position_embeddings=512)


def llama_pair(device: str) -> tuple[nn.Module, nn.Module]:
    """(glassformer DecoderOnly, HF LlamaForCausalLM with sdpa attention), same weights."""
    transformers = _quiet_transformers()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, **LLAMA_SIZES, rms_norm_eps=1e-5, bos_token_id=1,
                                      eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    peer = transformers.LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
    with tempfile.TemporaryDirectory() as folder:
        peer.save_pretrained(folder)
        write_tokenizer(Path(folder) / "tokenizer.json", ["<unk>", "<s>", "</s>"], VOCAB)
        ours = load_model(folder).model
    expected = get_preset("small-llama").replace(
        vocab_size=VOCAB, d_model=384, n_heads=6, n_kv_heads=2, d_ff=1024, n_layers=6, max_len=512, pad_id=0,
        # what the importer spells out and the preset leaves to its defaults
        d_attn=384, final_norm=True, attn_dropout=0.0, qkv_bias=False, attn_out_bias=False, ffn_bias=False,
    )
    assert ours.config == expected, f"imported config differs from the preset: {ours.config} vs {expected}"
    return ours.to(device), peer.to(device)
