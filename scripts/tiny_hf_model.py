"""Write a tiny, randomly initialised Hugging Face model folder to try glassformer's import on.

Nothing is downloaded: `transformers` (the test extra) builds the model, and a byte-level BPE
(GPT-2, BART, T5, the LLaMA family) or WordPiece (BERT) tokenizer is trained on sentences of the
built-in grammar; the LLaMA family's tokenizer puts <s> first, as LLaMA's does, T5's </s> last.

    python scripts/tiny_hf_model.py gpt2 /tmp/tiny-gpt2
    glassformer trace --model /tmp/tiny-gpt2 "the cat sees a bird"
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from glassformer.data.tasks import grammar


def corpus(n: int = 2000) -> list[str]:
    rng = random.Random(0)
    return [grammar.generate(rng) for _ in range(n)]


def byte_level_bpe(specials: list[str], vocab: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False))
    return tok


def wordpiece(vocab: int) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False))
    return tok


# model_type -> (config class, model class, settings of its own)
LLAMA_LIKE = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 16}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
}


def llama_like(family: str):
    """A tiny LLaMA-family model (4 query heads sharing 2 kv heads) and its tokenizer."""
    import transformers as tf

    tok = byte_level_bpe(["<unk>", "<s>", "</s>"], 300)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    config_class, model_class, own = LLAMA_LIKE[family]
    config = getattr(tf, config_class)(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
        vocab_size=tok.get_vocab_size(), max_position_embeddings=128, bos_token_id=1, eos_token_id=2, **own,
    )
    return tok, getattr(tf, model_class)(config)


def t5_tokenizer():
    """Byte-level BPE with T5's special ids (<pad> 0, </s> 1, <unk> 2); </s> ends every text, as T5's does."""
    tok = byte_level_bpe(["<pad>", "</s>", "<unk>"], 300)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=("gpt2", "bert", "bart", "t5", *LLAMA_LIKE))
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    import transformers as tf

    torch.manual_seed(0)
    if args.family == "gpt2":
        tok = byte_level_bpe(["<|endoftext|>"], 300)
        eos = tok.token_to_id("<|endoftext|>")
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128,
                                                 vocab_size=tok.get_vocab_size(), bos_token_id=eos, eos_token_id=eos))
    elif args.family == "bert":
        tok = wordpiece(300)
        model = tf.BertForMaskedLM(tf.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                                 intermediate_size=128, vocab_size=tok.get_vocab_size(),
                                                 max_position_embeddings=128))
    elif args.family in LLAMA_LIKE:
        tok, model = llama_like(args.family)
    elif args.family == "t5":
        tok = t5_tokenizer()
        model = tf.T5ForConditionalGeneration(tf.T5Config(
            num_layers=2, num_decoder_layers=2, d_model=64, d_kv=16, num_heads=4, d_ff=128, feed_forward_proj="gated-gelu",
            vocab_size=tok.get_vocab_size(), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    else:
        tok = byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], 300)
        model = tf.BartForConditionalGeneration(tf.BartConfig(
            encoder_layers=2, decoder_layers=2, d_model=64, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=tok.get_vocab_size(), max_position_embeddings=128,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None))
    model.eval().save_pretrained(args.out)
    tok.save(str(args.out / "tokenizer.json"))
    print(f"wrote a tiny random {args.family} model to {args.out}")


if __name__ == "__main__":
    main()
