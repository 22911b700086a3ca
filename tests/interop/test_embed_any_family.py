"""`glassformer embed` beyond encoders: a LLaMA folder's final hidden states (after the last
RMSNorm) pooled over the prompt `<s> text`, and a BART folder's encoder output, each equal to
what transformers computes for the text alone."""

import io
from contextlib import redirect_stdout

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

transformers = pytest.importorskip("transformers")

from glassformer.cli import main  # noqa: E402

transformers.logging.set_verbosity_error()
WORDS = "the cat sat on mat a dog ran in park hello world again and".split()
TEXTS = ["the cat sat on the mat", "a dog ran", "hello world again and again"]


def folder_of(root, name, specials, template, config, model_class):
    folder = root / name
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token=specials[1]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    used = [t for t in specials if t in template.split()]
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, specials.index(t)) for t in used])
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config(vocab_size=len(specials) + len(WORDS))).eval()
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder, model, transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


def embed(*args):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["embed", *args]) == 0
    return torch.tensor([[float(x) for x in line.split()] for line in out.getvalue().splitlines()])


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_llama_embeddings_are_its_final_hidden_states_pooled(tmp_path, pooling):
    def config(**size):
        return transformers.LlamaConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, bos_token_id=1, eos_token_id=2, initializer_range=0.2, **size)

    folder, model, tok = folder_of(tmp_path, "llama", ["<unk>", "<s>", "</s>"], "<s> $A", config, "LlamaForCausalLM")
    printed = embed("--model", str(folder), "--pooling", pooling, *TEXTS)
    expected = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tok(text, return_tensors="pt")["input_ids"]
            assert ids[0, 0] == 1  # <s> first, as the prompt is framed
            hidden = model.model(ids).last_hidden_state[0]
            expected.append(hidden.mean(0) if pooling == "mean" else hidden[-1])
    expected = torch.nn.functional.normalize(torch.stack(expected), dim=-1)
    assert printed.shape == (3, 32) and (printed - expected).abs().max() < 1e-5  # printed with 6 decimals


def test_bart_embeddings_are_its_encoder_output_mean_pooled(tmp_path):
    def config(**size):
        return transformers.BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                       decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
                                       max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                       decoder_start_token_id=2, forced_eos_token_id=None, init_std=0.2, **size)

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    folder, model, tok = folder_of(tmp_path, "bart", specials, "<s> $A </s>", config, "BartForConditionalGeneration")
    printed = embed("--model", str(folder), *TEXTS)
    with torch.no_grad():
        encoded = [model.model.encoder(tok(text, return_tensors="pt")["input_ids"]).last_hidden_state for text in TEXTS]
    expected = torch.stack([hidden[0].mean(0) for hidden in encoded])
    expected = torch.nn.functional.normalize(expected, dim=-1)
    assert printed.shape == (3, 32) and (printed - expected).abs().max() < 1e-5
