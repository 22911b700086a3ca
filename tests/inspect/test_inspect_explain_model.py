"""`glassformer explain --model`: the walk-through of an imported model at its real size prints
the very tensors transformers computes (hidden states, attention, next-token probabilities),
with the shapes trace names, for a decoder (LLaMA: grouped-query heads, RoPE) and encoder-decoders
(BART and T5: cross-attention rows are target tokens, columns source tokens)."""

import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

transformers = pytest.importorskip("transformers")

from glassformer.cli import main  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
TEXT = "the cat sat on the mat"
HALF = 0.5e-4  # the largest rounding error of a number printed with 4 decimals


def bpe(folder, specials, template=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=90, special_tokens=specials, show_progress=False))
    if template:
        tok.post_processor = processors.TemplateProcessing(single=template[0], special_tokens=template[1])
    tok.save(str(folder / "tokenizer.json"))
    return transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    tok = bpe(folder, ["<unk>", "<s>", "</s>"], ("<s> $A", [("<s>", 1)]))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, initializer_range=0.2,
        attn_implementation="eager",  # so that transformers returns its attention probabilities
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    return folder, model, tok


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bart")
    tok = bpe(folder, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s> $A </s>", [("<s>", 0), ("</s>", 2)]))
    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=tok.vocab_size, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
        init_std=0.2, attn_implementation="eager",
    )
    model = transformers.BartForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    return folder, model, tok


def run(*args):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["explain", *args]) == 0
    return out.getvalue()


def blocks(text):
    """{source hook: (title, row labels, column labels, values)} of every printed block."""
    found, lines, i = {}, text.splitlines(), 0
    while i < len(lines):
        match = re.match(r"^▸ \S+  (.*?)  \[\d+ × \d+\]   ← (\S+)$", lines[i])
        if not match:
            i += 1
            continue
        cols, rows, values, j = lines[i + 1].split(), [], [], i + 2
        while j < len(lines) and lines[j].strip():
            label, *numbers = lines[j].split()
            rows.append(label)
            values.append([float(x) for x in numbers])
            j += 1
        found[match.group(2)] = (match.group(1), rows, cols, np.array(values))
        i = j
    return found


def test_llama_walkthrough_prints_transformers_tensors(llama):
    folder, model, tok = llama
    text = run("--model", str(folder), "--cols", "5", "--layers", "all", TEXT)
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
    printed = blocks(text)
    tokens = [t.replace(" ", "·") for t in tok.convert_ids_to_tokens(ids[0])]
    title, rows, cols, values = printed["decoder.hook_out"]
    assert (rows, cols, title) == (tokens, ["d0", "d1", "d2", "d3", "d4"], "hook_out (first 5 of 32 columns)")
    assert np.abs(values - out.hidden_states[-1][0, :, :5].numpy()).max() <= HALF  # after the final RMSNorm
    for layer in (0, 1):
        title, rows, cols, values = printed[f"decoder.layers.{layer}.self_attn.hook_probs"]
        assert title == "hook_probs (head 0 of 4)" and rows == cols == tokens
        assert np.abs(values - out.attentions[layer][0, 0].numpy()).max() <= HALF
    # Grouped-query attention: K and V are two heads wide, as trace names them.
    assert "K, V  [B=1, T=7, A_kv=16]" in text and "2 key/value heads, each shared by 2 query heads" in text
    probs = torch.softmax(out.logits[0, -1], -1)
    best = probs.topk(5)
    listed = re.findall(r"id (\d+)  logit (\S+)  probability (\S+)", text.split("═══ the next token")[1])
    assert [int(i) for i, _, _ in listed] == best.indices.tolist()
    assert np.abs(np.array([float(p) for _, _, p in listed]) - best.values.numpy()).max() <= HALF


def test_bart_walkthrough_cross_attention_reads_the_source(bart):
    folder, model, tok = bart
    text = run("--model", str(folder), "--cols", "4", TEXT)
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, decoder_input_ids=torch.tensor([[2]]), output_attentions=True)
    title, rows, cols, values = blocks(text)["decoder.layers.0.cross_attn.hook_probs"]
    source = [t.replace(" ", "·") for t in tok.convert_ids_to_tokens(ids[0])]
    assert (rows, cols, values.shape) == (["</s>"], source, (1, len(source)))
    assert np.abs(values - out.cross_attentions[0][0, 0].numpy()).max() <= HALF
    _, _, _, hidden = blocks(text)["encoder.hook_out"]
    assert np.abs(hidden - out.encoder_last_hidden_state[0, :, :4].numpy()).max() <= HALF
    assert "═══ the first target token: the 5 most probable of" in text


def test_toy_flags_do_not_go_with_model(llama, capsys):
    folder, _, _ = llama
    assert main(["explain", "--model", str(folder), "--train", "3", TEXT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--train builds the toy model; not for --model" in err


def test_t5_walkthrough_prints_transformers_encoder_output_and_cross_attention(tmp_path):
    from tests.interop.test_hf_t5 import save_t5

    # ReLU, the tied head scaled by d_model**-0.5, a decoder deeper than the encoder; read back with
    # eager attention, so that transformers returns its attention probabilities.
    save_t5(tmp_path / "t5", "v1.0")
    model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "t5", attn_implementation="eager").eval()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "t5" / "tokenizer.json"))
    text = run("--model", str(tmp_path / "t5"), "--cols", "4", "--layers", "all", TEXT)
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, decoder_input_ids=torch.tensor([[0]]), output_attentions=True)
    printed = blocks(text)
    source = [t.replace(" ", "·") for t in tok.convert_ids_to_tokens(ids[0])]
    _, rows, _, hidden = printed["encoder.hook_out"]
    n = len(rows)  # the first rows are printed
    assert n >= 8 and rows == source[:n]
    assert np.abs(hidden - out.encoder_last_hidden_state[0, :n, :4].numpy()).max() <= HALF + 1e-6
    for layer in (0, 1, 2):
        title, rows, cols, values = printed[f"decoder.layers.{layer}.cross_attn.hook_probs"]
        assert (rows, cols) == (["<pad>"], source[: len(cols)])  # T5's decoder starts at <pad>
        assert np.abs(values - out.cross_attentions[layer][0, 0, :, : len(cols)].numpy()).max() <= HALF + 1e-6
    _, rows, _, logits = printed["lm_head.hook_logits"]
    assert rows == ["<pad>"] and np.abs(logits - out.logits[0, :, :4].numpy()).max() <= HALF + 1e-6
    probs = torch.softmax(out.logits[0, -1], -1)
    listed = re.findall(r"id (\d+)  logit \S+  probability (\S+)", text.split("═══ the first target token")[1])
    assert [int(i) for i, _ in listed] == probs.topk(5).indices.tolist()
