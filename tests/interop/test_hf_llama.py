"""LLaMA, Qwen2, Mistral and Qwen3 from and to Hugging Face folders: logits on padded batches,
greedy decoding against `generate`, export, round trips, framing by tokenizer.json."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

transformers = pytest.importorskip("transformers")

from glassformer import generate  # noqa: E402
from glassformer.config import get_preset  # noqa: E402
from glassformer.errors import UserError  # noqa: E402
from glassformer.framing import Framing, sequence_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.models import build_model  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
UNK, BOS, EOS = 0, 1, 2
VOCAB = 99
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}

SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, bos_token_id=BOS, eos_token_id=EOS,
             initializer_range=0.2)
# model_type -> (config class, model class, settings beyond SMALL): one of each family, each
# with its own switches (LLaMA: llama3 rope scaling, untied head; Qwen2: q/k/v biases, tied
# head; Mistral: a sliding window shorter than the test sequences; Qwen3: q/k norms, head_dim).
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(rope_parameters={"rope_theta": 500.0, **LLAMA3_ROPE})),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=5)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16, attention_bias=True)),
}


def bpe_with_bos(path, bos=True):
    """A byte-level BPE whose post-processor puts <s> first, as LLaMA's tokenizer.json does."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=90, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS)]
        )
    tok.save(str(path))
    return tok


def make_folder(tmp_path, model_type, seed=0, vocab_of_tokenizer=False):
    """A tiny random model saved by transformers, and its tokenizer.json. Its vocabulary is wider
    than the tokenizer's (as Qwen2.5's is), unless vocab_of_tokenizer: then every id it can
    choose decodes to text, which the commands that print text need."""
    config_name, model_name, extra = FAMILIES[model_type]
    if not hasattr(transformers, model_name):
        pytest.skip(f"this transformers has no {model_name}")
    folder = tmp_path / model_type
    folder.mkdir()
    tok = bpe_with_bos(folder / "tokenizer.json")
    vocab = tok.get_vocab_size() if vocab_of_tokenizer else VOCAB
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{**SMALL, **extra, "vocab_size": vocab})
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    model, folder = make_folder(tmp_path_factory.mktemp("hf"), request.param)
    return request.param, model, folder, load_hf_folder(folder)


def positions_of(attention_mask):
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def test_config_switches_read_from_each_family(family):
    model_type, _, _, run = family
    c = run.config
    assert (c.positions, c.norm_type, c.gated_ffn, c.activation, c.n_heads, c.kv_heads) == (
        "rotary", "rmsnorm", True, "silu", 4, 2)
    expected = {
        "llama": dict(rope_scaling=dict(LLAMA3_ROPE), rope_theta=500.0, use_qkv_bias=False, tie_output=False),
        "qwen2": dict(use_qkv_bias=True, use_attn_out_bias=False, tie_output=True),
        "mistral": dict(sliding_window=5, use_qkv_bias=False),
        "qwen3": dict(qk_norm=True, d_head=16, attn_width=64, use_qkv_bias=True, use_attn_out_bias=True),
    }[model_type]
    assert {k: getattr(c, k) for k in expected} == expected


@pytest.mark.parametrize("side", ["right", "left"])
def test_logits_match_transformers_on_padded_batches(family, side):
    _, hf, _, run = family
    ids = torch.randint(3, 90, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    if side == "left":
        mask = mask.flip(-1)
    positions = positions_of(mask)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, position_ids=positions).logits
        ours = run.model(ids, mask=mask.bool()[:, None, None, :], positions=positions)
    real = mask.bool()
    assert (ours - expected)[real].abs().max() < 1e-4


def test_glassformer_generate_matches_generate_with_left_padding(family):
    _, hf, _, run = family
    prompts = [[BOS, 5, 17, 33, 2 + 60, 61, 8], [BOS, 40, 41, 42], [BOS, 77]]
    width = max(map(len, prompts))
    ids = torch.tensor([[EOS] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        expected = hf.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=15,
                               pad_token_id=EOS, eos_token_id=EOS)
    results = generate.generate_lm(run.model, prompts, stopping=generate.Stopping(end_id=EOS, max_new_tokens=15))
    for row, result in zip(expected[:, width:].tolist(), results):
        assert result.tokens == (row[: row.index(EOS) + 1] if EOS in row else row)


def test_export_loads_in_transformers_and_round_trips_exactly(family, tmp_path):
    model_type, hf, folder, run = family
    out = export_hf(run, tmp_path / "exported")
    assert json.loads((out / "config.json").read_text())["model_type"] == model_type
    again = getattr(transformers, FAMILIES[model_type][1]).from_pretrained(out).eval()
    ids = torch.randint(3, 90, (2, 10))
    with torch.no_grad():
        assert (again(ids).logits - hf(ids).logits).abs().max() < 1e-4
    original, written = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    reread = load_hf_folder(out)
    assert reread.config == run.config and reread.meta["framing"] == run.meta["framing"]
    ours, back = run.model.state_dict(), reread.model.state_dict()
    assert ours.keys() == back.keys() and all(torch.equal(ours[k], back[k]) for k in ours)


def test_prompt_is_framed_as_tokenizer_json_frames_it(family):
    _, _, folder, run = family
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    framing = Framing.from_meta(run.meta)
    text = "the cat sat"
    assert raw.encode(text).ids[0] == BOS
    assert sequence_ids(run.tokenizer, text, framing, end=False) == raw.encode(text).ids
    assert sequence_ids(run.tokenizer, text, framing) == raw.encode(text).ids + [EOS]


def test_gpt2_folder_whose_tokenizer_adds_bos_keeps_it(tmp_path):
    """The issue's case: a GPT-2 folder whose tokenizer.json adds <s> gave prompts without it."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=VOCAB, n_positions=32,
                                     bos_token_id=BOS, eos_token_id=EOS)
    folder = tmp_path / "gpt2-bos"
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    raw = bpe_with_bos(folder / "tokenizer.json")
    settings = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    run = load_hf_folder(folder)
    framing = Framing.from_meta(run.meta)
    assert sequence_ids(run.tokenizer, "a dog ran", framing, end=False) == raw.encode("a dog ran").ids
    assert sequence_ids(run.tokenizer, "a dog ran", framing, end=False)[0] == BOS


def test_glassformer_llama_style_model_exports_as_the_family_that_expresses_it(tmp_path):
    config = get_preset("small-llama").replace(vocab_size=VOCAB, n_layers=1, d_model=32, n_heads=4, n_kv_heads=2,
                                               d_ff=48, max_len=64)
    torch.manual_seed(0)
    cases = {
        "llama": (dict(), "LlamaForCausalLM"),
        "qwen2": (dict(qkv_bias=True), "Qwen2ForCausalLM"),
        "mistral": (dict(sliding_window=4), "MistralForCausalLM"),
    }
    ids = torch.randint(0, VOCAB, (2, 9))
    for model_type, (changes, cls) in cases.items():
        model = build_model(config.replace(**changes)).eval()
        out = export_hf(model, tmp_path / model_type)
        assert json.loads((out / "config.json").read_text())["model_type"] == model_type
        hf = getattr(transformers, cls).from_pretrained(out).eval()
        with torch.no_grad():
            assert (hf(ids).logits - model(ids)).abs().max() < 1e-4
    with pytest.raises(UserError, match="cannot export as llama: .*scale_embeddings"):
        export_hf(build_model(config.replace(scale_embeddings=True)), tmp_path / "never")


def test_unsupported_rope_type_is_one_line(tmp_path):
    _, folder = make_folder(tmp_path, "llama")
    document = json.loads((folder / "config.json").read_text())
    document["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="rope type 'yarn' is not supported; supported: default, llama3"):
        load_hf_folder(folder)


# Commands on a LLaMA folder -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("cmd"), "llama", vocab_of_tokenizer=True)[1]


def test_trace_attention_report_and_generate_commands(llama_folder, tmp_path, capsys):
    from glassformer.cli import main

    folder = str(llama_folder)
    assert main(["trace", "--model", folder, "the cat sat"]) == 0
    out = capsys.readouterr().out
    assert "rotate Q, K" in out and "[B=1, T=4, A_kv=16]" in out and "RMSNorm" in out and "gated hidden" in out
    assert main(["attention", "--model", folder, "--max-steps", "3", "the cat"]) == 0
    assert "decoder masked self-attention · layer 0 · head 0" in capsys.readouterr().out
    assert main(["report", "--model", folder, "--out", str(tmp_path / "r.html"), "--max-steps", "3", "the cat"]) == 0
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    capsys.readouterr()
    assert main(["generate", "--model", folder, "--prompt", "the cat", "--greedy", "--max-new-tokens", "6"]) == 0
    run = load_hf_folder(llama_folder)
    prompt = sequence_ids(run.tokenizer, "the cat", Framing.from_meta(run.meta), end=False)
    [expected] = generate.generate_lm(run.model, [prompt], stopping=generate.Stopping(end_id=EOS, max_new_tokens=6))
    assert capsys.readouterr().out == run.tokenizer.decode(expected.tokens) + "\n"


def test_train_init_from_a_llama_folder_then_export_to_transformers(llama_folder, tmp_path, capsys):
    from glassformer.cli import main
    from glassformer.load import load_model

    data = tmp_path / "lm.txt"
    data.write_text("\n".join(CORPUS * 5) + "\n")
    out = tmp_path / "ft"
    assert main(["train", "--data", str(data), "--kind", "lm", "--init", str(llama_folder), "--out", str(out),
                 "--steps", "8", "--eval-every", "8", "--lr", "3e-3", "--warmup", "2", "--no-progress",
                 "--examples", "0"]) == 0
    assert f"init from {llama_folder}: loaded 21 tensors" in capsys.readouterr().out
    run = load_model(out)
    assert run.config == load_hf_folder(llama_folder).config.replace(dropout=run.config.dropout)
    exported = tmp_path / "hf"
    assert main(["export", "--model", str(out), "--out", str(exported)]) == 0
    assert capsys.readouterr().out == f"wrote {exported}: llama model of kind lm\n"
    hf = transformers.LlamaForCausalLM.from_pretrained(exported).eval()
    ids = torch.randint(3, run.config.vocab_size, (2, 8))
    with torch.no_grad():
        assert (hf(ids).logits - run.model(ids)).abs().max() < 1e-4


def test_bare_llama_model_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    bpe_with_bos(folder / "tokenizer.json")
    transformers.LlamaModel(transformers.LlamaConfig(**SMALL)).save_pretrained(folder)
    with pytest.raises(UserError, match="LlamaModel is not supported; llama models load as: LlamaForCausalLM"):
        load_hf_folder(folder)
