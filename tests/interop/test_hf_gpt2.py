"""GPT-2 from and to Hugging Face folders: logits, greedy decoding, export, strict errors, CLI."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from glassformer.cli import main  # noqa: E402
from glassformer.config import get_preset  # noqa: E402
from glassformer.errors import UserError  # noqa: E402
from glassformer.framing import Framing, sequence_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.models import build_model  # noqa: E402
from glassformer.load import load_model  # noqa: E402
from glassformer.text import SubwordTokenizer  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
EOS = 0  # <|endoftext|> is the tokenizer's first token


def byte_level_bpe(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=90, special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(path))
    return tok


@pytest.fixture
def gpt2(tmp_path):
    """A tiny random GPT-2 saved by transformers, with a byte-level BPE tokenizer beside it."""
    torch.manual_seed(0)
    # Weights wider than the default 0.02, so that a random model's choices depend on its input.
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=4, vocab_size=99, n_positions=64, bos_token_id=EOS, eos_token_id=EOS,
        initializer_range=0.2,
    )
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    byte_level_bpe(folder / "tokenizer.json")
    return model, folder


def padding_mask(attention_mask):
    return attention_mask.bool()[:, None, None, :]


def left_padded_positions(attention_mask):
    # transformers' generate counts positions from each row's first real token.
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def test_logits_match_transformers_right_and_left_padding(gpt2):
    hf, folder = gpt2
    run = load_hf_folder(folder)
    ids = torch.randint(1, 90, (3, 12))
    right = torch.ones(3, 12, dtype=torch.long)
    right[1, 8:] = 0
    right[2, 5:] = 0
    left = right.flip(-1)
    with torch.no_grad():
        for mask, positions in ((right, None), (left, left_padded_positions(left))):
            expected = hf(ids, attention_mask=mask, position_ids=positions).logits
            ours = run.model(ids, mask=padding_mask(mask), positions=positions)
            real = mask.bool()
            assert (ours - expected)[real].abs().max() < 1e-4


def test_load_run_gives_lm_with_its_tokenizer(gpt2):
    _, folder = gpt2
    run = load_model(folder)
    assert run.kind == "lm" and run.config.family == "decoder-only"
    assert run.config.activation == "gelu_tanh" and run.config.norm == "pre" and not run.config.scale_embeddings
    assert isinstance(run.tokenizer, SubwordTokenizer)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert run.tokenizer.start_id == run.tokenizer.end_id == EOS
    # A prompt is the bare text, as transformers tokenizes it; a whole text ends with <|endoftext|>.
    framing = Framing.from_meta(run.meta)
    assert sequence_ids(run.tokenizer, "the cat sat", framing, end=False) == raw.encode("the cat sat").ids
    assert sequence_ids(run.tokenizer, "the cat sat", framing) == raw.encode("the cat sat").ids + [EOS]


def greedy(model, ids, attention_mask, max_new, eos, use_cache):
    """Greedy decoding as transformers does it: finished rows continue with eos as padding."""
    ids, mask = ids.clone(), attention_mask.clone()
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(ids.size(0), dtype=torch.bool)
    step_ids, step_pos, cache_pos = ids, left_padded_positions(mask), 0
    for _ in range(max_new):
        if use_cache:
            logits = model(step_ids, mask=padding_mask(mask), positions=step_pos, cache=cache, cache_pos=cache_pos)
            cache_pos += step_ids.size(1)
        else:
            logits = model(ids, mask=padding_mask(mask), positions=left_padded_positions(mask))
        token = logits[:, -1].argmax(-1).masked_fill(done, eos)
        done |= token == eos
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids, step_pos = token[:, None], left_padded_positions(mask)[:, -1:]
        if done.all():
            break
    return ids


@pytest.mark.parametrize("use_cache", [False, True])
def test_greedy_decoding_matches_generate(gpt2, use_cache):
    hf, folder = gpt2
    run = load_hf_folder(folder)
    ids = torch.randint(1, 90, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, :2] = 0  # left padding, as for batched generation
    mask[2, :4] = 0
    ids = ids.masked_fill(mask == 0, EOS)
    with torch.no_grad():
        expected = hf.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=20, pad_token_id=EOS)
        ours = greedy(run.model, ids, mask, 20, EOS, use_cache)
    assert ours.tolist() == expected.tolist()


def until_end(row, eos):
    row = list(row)
    return row[: row.index(eos) + 1] if eos in row else row


@pytest.mark.parametrize("use_cache", [False, True])
def test_glassformer_generate_matches_generate(gpt2, use_cache):
    from glassformer import generate
    hf, folder = gpt2
    run = load_hf_folder(folder)
    prompts = [[5, 17, 33, 2, 61, 8], [40, 41, 42, 43], [77, 9]]
    with torch.no_grad():
        expected = [hf.generate(torch.tensor([p]), do_sample=False, num_beams=1, max_new_tokens=20, pad_token_id=EOS)[0]
                    for p in prompts]
    stopping = generate.Stopping(end_id=EOS, max_new_tokens=20)
    results = generate.generate_lm(run.model, prompts, stopping=stopping, use_cache=use_cache)
    for prompt, result, reference in zip(prompts, results, expected):
        assert result.tokens == until_end(reference[len(prompt):].tolist(), EOS)


def test_old_pickled_checkpoint_without_prefix_and_with_mask_buffers(gpt2, tmp_path):
    hf, folder = gpt2
    old = tmp_path / "old"
    old.mkdir()
    # A GPT2Model-style state (no "transformer." prefix), the causal-mask buffers old
    # checkpoints kept, and the tied lm_head weight stored a second time.
    state = {k.removeprefix("transformer."): v.clone() for k, v in hf.state_dict().items()}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, old / "pytorch_model.bin")
    (old / "config.json").write_text((folder / "config.json").read_text())
    (old / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
    run = load_hf_folder(old)
    ids = torch.randint(1, 90, (2, 9))
    with torch.no_grad():
        assert (run.model(ids) - hf(ids).logits).abs().max() < 1e-4


def test_export_loads_in_transformers_and_round_trips_exactly(gpt2, tmp_path):
    hf, folder = gpt2
    run = load_hf_folder(folder)
    out = export_hf(run, tmp_path / "exported")
    again = GPT2LMHeadModel.from_pretrained(out).eval()
    ids = torch.randint(1, 90, (2, 10))
    with torch.no_grad():
        assert (again(ids).logits - hf(ids).logits).abs().max() < 1e-4
    original, written = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys()
    assert all(torch.equal(written[k], original[k]) for k in original)
    reread = load_hf_folder(out)
    assert reread.kind == "lm" and reread.tokenizer.to_dict() == run.tokenizer.to_dict()
    ours, back = run.model.state_dict(), reread.model.state_dict()
    assert ours.keys() == back.keys() and all(torch.equal(ours[k], back[k]) for k in ours)


def test_trained_here_model_exports_as_gpt2(tmp_path):
    tokenizer = SubwordTokenizer.train(CORPUS, 60)
    config = get_preset("tiny-lm").replace(
        vocab_size=tokenizer.vocab_size, scale_embeddings=False, activation="gelu", positions="sinusoidal"
    )
    model = build_model(config).eval()  # sinusoidal positions export as a learned table of the same values
    out = export_hf(model, tmp_path / "exported")
    hf = GPT2LMHeadModel.from_pretrained(out).eval()
    ids = torch.randint(0, tokenizer.vocab_size, (2, 11))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids)).abs().max() < 1e-4
    with pytest.raises(UserError, match="scale_embeddings"):
        export_hf(build_model(get_preset("tiny-lm").replace(scale_embeddings=True)), tmp_path / "never")


# Folders that do not match: one clear line, exit status 2 ----------------------------------------
def _rewrite_weights(folder, change):
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _rewrite_config(folder, **changes):
    document = json.loads((folder / "config.json").read_text())
    document.update(changes)
    (folder / "config.json").write_text(json.dumps(document))


BAD_FOLDERS = {
    "missing": (lambda f: _rewrite_weights(f, lambda s: s.pop("transformer.h.1.attn.c_attn.weight")),
                "weights do not match gpt2: missing transformer.h.1.attn.c_attn.weight"),
    "extra": (lambda f: _rewrite_weights(f, lambda s: s.update({"transformer.h.0.attn.rotary.weight": torch.zeros(3)})),
              "weights do not match gpt2: unexpected transformer.h.0.attn.rotary.weight"),
    "shape": (lambda f: _rewrite_config(f, vocab_size=100),
              "weights do not match gpt2: wrong shape transformer.wte.weight (99, 32) != (100, 32)"),
    "model_type": (lambda f: _rewrite_config(f, model_type="xlnet"),
                   "model_type 'xlnet' is not supported; supported: gpt2, bert, roberta, distilbert, bart, marian, "
                   "blenderbot, llama, qwen2, mistral, qwen3, t5"),
    # Beyond the four: other ways a folder can fall short.
    "architecture": (lambda f: _rewrite_config(f, architectures=["GPT2DoubleHeadsModel"]),
                     "GPT2DoubleHeadsModel is not supported; gpt2 models load as: GPT2LMHeadModel, GPT2Model, "
                     "GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2ForQuestionAnswering"),
    "no_weights": (lambda f: (f / "model.safetensors").unlink(),
                   "no weights (expected model.safetensors or pytorch_model.bin)"),
    "no_tokenizer": (lambda f: (f / "tokenizer.json").unlink(),
                     "no tokenizer.json (the tokenizer is read from the `tokenizers` library's JSON file)"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folder_is_one_line_and_exit_2(gpt2, case, capsys):
    _, folder = gpt2
    spoil, message = BAD_FOLDERS[case]
    spoil(folder)
    with pytest.raises(UserError) as error:
        load_model(folder)
    assert str(error.value) == f"{folder}: {message}"
    capsys.readouterr()
    assert main(["embed", "--model", str(folder), "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unsupported_gpt2_setting_is_named(gpt2):
    _, folder = gpt2
    _rewrite_config(folder, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(UserError, match=r"gpt2 setting\(s\) not supported: scale_attn_by_inverse_layer_idx=true"):
        load_model(folder)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_embed_pools_a_language_models_final_hidden_states(gpt2, pooling, capsys):
    hf, folder = gpt2
    texts = ["the cat sat on the mat", "a dog"]
    capsys.readouterr()
    assert main(["embed", "--model", str(folder), "--pooling", pooling, *texts]) == 0
    printed = torch.tensor([[float(x) for x in line.split()] for line in capsys.readouterr().out.splitlines()])
    tok = load_model(folder).tokenizer
    expected = []
    with torch.no_grad():
        for text in texts:  # each prompt alone: the bare text, as transformers' tokenizer gives it
            hidden = hf.transformer(torch.tensor([tok.encode(text)])).last_hidden_state[0]  # after ln_f
            expected.append(hidden.mean(0) if pooling == "mean" else hidden[-1])
    expected = torch.nn.functional.normalize(torch.stack(expected), dim=-1)
    assert printed.shape == (2, 32)
    assert (printed - expected).abs().max() < 1e-5  # printed with 6 decimals


def test_export_command_writes_a_folder_transformers_loads(gpt2, tmp_path, capsys):
    hf, folder = gpt2
    out = tmp_path / "cli-export"
    assert main(["export", "--model", str(folder), "--out", str(out)]) == 0
    assert "gpt2 model of kind lm" in capsys.readouterr().out
    again = GPT2LMHeadModel.from_pretrained(out).eval()
    ids = torch.randint(1, 90, (1, 7))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, hf(ids).logits)
