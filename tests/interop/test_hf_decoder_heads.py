"""Decoder-only heads from and to Hugging Face folders: GPT-2's and the LLaMA family's
...ForSequenceClassification (the last non-pad token), ...ForTokenClassification and
...ForQuestionAnswering, and BART's sequence classifier and span head (on its decoder). Logits on
right-padded batches against transformers, export read back by transformers, round trips exact,
and `glassformer classify` on an imported GPT2ForSequenceClassification folder."""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

transformers = pytest.importorskip("transformers")

from glassformer.cli.main import main  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.models.heads import last_real_position  # noqa: E402
from glassformer.run_folder import load_run  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
LABELS = ["negative", "neutral", "positive"]
VOCAB = 99
# The first tokens of each tokenizer; <pad> is a token of its own, so that a pooled position is never mistaken.
GPT2_SPECIALS, LLAMA_SPECIALS = ["<|endoftext|>", "<pad>"], ["<unk>", "<s>", "</s>", "<pad>"]
LLAMA = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=3)
# (config class, settings): each family with its own switches, as in test_hf_llama.
FAMILIES = {
    "gpt2": ("GPT2Config", dict(n_layer=2, n_embd=32, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0,
                                pad_token_id=1)),
    "llama": ("LlamaConfig", LLAMA),
    "qwen2": ("Qwen2Config", LLAMA),
    "mistral": ("MistralConfig", {**LLAMA, "sliding_window": 5}),
    "qwen3": ("Qwen3Config", {**LLAMA, "head_dim": 16, "attention_bias": True}),
}
CLASS_PREFIX = {"gpt2": "GPT2", "llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral", "qwen3": "Qwen3"}
HEADS = {"classify": "ForSequenceClassification", "tag": "ForTokenClassification"}
CASES = [("gpt2", "classify"), ("gpt2", "tag"), ("llama", "classify"), ("llama", "tag"), ("qwen2", "classify"),
         ("mistral", "classify"), ("qwen3", "tag")]


def tokenizer(path, model_type):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = GPT2_SPECIALS if model_type == "gpt2" else LLAMA_SPECIALS
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=90, special_tokens=specials, show_progress=False))
    if model_type != "gpt2":
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(path))
    return tok


def make_folder(root, model_type, kind, labels=LABELS):
    config_name, settings = FAMILIES[model_type]
    class_name = CLASS_PREFIX[model_type] + HEADS[kind]
    if not hasattr(transformers, class_name):
        pytest.skip(f"this transformers has no {class_name}")
    folder = root / f"{model_type}-{kind}"
    folder.mkdir()
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(
        **settings, vocab_size=VOCAB, initializer_range=0.2, id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = getattr(transformers, class_name)(config).eval()
    model.save_pretrained(folder)
    tokenizer(folder / "tokenizer.json", model_type)
    return model, folder


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def case(request, tmp_path_factory):
    model_type, kind = request.param
    hf, folder = make_folder(tmp_path_factory.mktemp("heads"), model_type, kind)
    return model_type, kind, hf, folder, load_hf_folder(folder)


def padded_batch(pad):
    """Three rows of 10 ids (none of them pad), right-padded after 10, 6 and 3 tokens."""
    ids = torch.randint(4, 90, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids.masked_fill(mask == 0, pad), mask


def test_last_real_position_is_the_rightmost_true():
    real = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert last_real_position(real).tolist() == [2, 0, 3, 0]


def test_imported_head_and_labels(case):
    model_type, kind, _, _, run = case
    assert (run.kind, run.config.family, run.config.head, run.labels) == (kind, "decoder-only", kind, LABELS)
    assert not hasattr(run.model, "lm_head")
    assert run.meta["hf"]["architectures"] == [CLASS_PREFIX[model_type] + HEADS[kind]]


def test_logits_match_transformers_on_a_right_padded_batch(case):
    _, kind, hf, _, run = case
    ids, mask = padded_batch(run.config.pad_id)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask).logits
        ours = run.model(ids, mask.bool()[:, None, None, :])
    assert ours.shape == expected.shape == ((3, 3) if kind == "classify" else (3, 10, 3))
    real = slice(None) if kind == "classify" else mask.bool()
    assert (ours - expected)[real].abs().max() < 1e-4  # measured: below 1e-6


def test_export_loads_in_transformers_and_round_trips_exactly(case, tmp_path):
    model_type, kind, hf, _, run = case
    out = export_hf(run, tmp_path / "out")
    document = json.loads((out / "config.json").read_text())
    assert document["architectures"] == [CLASS_PREFIX[model_type] + HEADS[kind]]
    assert document["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    auto = {"classify": transformers.AutoModelForSequenceClassification,
            "tag": transformers.AutoModelForTokenClassification}[kind]
    again = auto.from_pretrained(out).eval()
    ids, mask = padded_batch(run.config.pad_id)
    with torch.no_grad():
        assert torch.equal(again(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits)
    back = load_hf_folder(out)
    assert (back.kind, back.labels) == (kind, LABELS)
    ours, theirs = run.model.state_dict(), back.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_classify_command_on_an_imported_gpt2_classifier(tmp_path, capsys):
    hf, folder = make_folder(tmp_path, "gpt2", "classify")
    texts = ["the cat sat on the mat", "a dog"]
    capsys.readouterr()
    assert main(["classify", "--model", str(folder), "--top", "3", *texts]) == 0
    lines = capsys.readouterr().out.splitlines()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(hf(**batch).logits, -1)
    assert len(lines) == 2
    for line, row in zip(lines, probs):
        shown = line.split()
        printed = {shown[i]: float(shown[i + 1]) for i in range(0, len(shown), 2)}
        assert printed.keys() == set(LABELS)
        assert list(printed.values()) == sorted(printed.values(), reverse=True)
        assert all(abs(printed[name] - p) <= 0.0005 + 1e-6 for name, p in zip(LABELS, row.tolist()))


def test_unsupported_decoder_head_is_one_line(tmp_path, capsys):
    _, folder = make_folder(tmp_path, "gpt2", "classify")
    document = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**document, "architectures": ["GPT2DoubleHeadsModel"]}))
    capsys.readouterr()  # transformers' progress bar while saving
    assert main(["classify", "--model", str(folder), "the cat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "GPT2DoubleHeadsModel is not supported; gpt2 models load as: GPT2LMHeadModel" in err
    assert "GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2ForQuestionAnswering" in err


def test_seeing_commands_and_tag_on_decoder_classifiers(tmp_path, capsys):
    _, folder = make_folder(tmp_path, "llama", "classify")
    capsys.readouterr()
    assert main(["trace", "--model", str(folder), "--json", "the cat sat"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[-1]["shape"] == [1, 3] and rows[-1]["dims"] == ["B", "n_labels"]
    assert main(["attention", "--model", str(folder), "--layer", "1", "the cat sat"]) == 0
    assert capsys.readouterr().out.count("head 3") == 1  # one forward, no decoding: four heads drawn
    assert main(["report", "--model", str(folder), "--out", str(tmp_path / "r.html"), "the cat sat"]) == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000

    _, folder = make_folder(tmp_path, "gpt2", "tag", labels=["O", "B-PER", "I-PER"])
    capsys.readouterr()
    assert main(["tag", "--model", str(folder), "--tags", "the cat sat on the mat"]) == 0
    tagged = capsys.readouterr().out.splitlines()[0].split()
    assert [w.split("/")[0] for w in tagged] == "the cat sat on the mat".split()
    assert all(w.split("/")[1] in ("O", "B-PER", "I-PER") for w in tagged)


def test_tag_prints_labels_that_are_not_bio_tags(tmp_path, capsys):
    _, folder = make_folder(tmp_path, "gpt2", "tag")
    capsys.readouterr()
    assert main(["tag", "--model", str(folder), "the cat sat on the mat"]) == 0
    tagged = capsys.readouterr().out.splitlines()
    assert len(tagged) == 1 and [w.split("/")[0] for w in tagged[0].split()] == "the cat sat on the mat".split()
    assert all(w.split("/")[1] in LABELS for w in tagged[0].split())


def bart_config(**labels):
    return transformers.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
        init_std=0.2, **labels,
    )


def bart_tokenizer(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=90, special_tokens=specials, show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))


@pytest.fixture(scope="module")
def bart_classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bart-classify")
    bart_tokenizer(folder / "tokenizer.json")
    torch.manual_seed(0)
    config = bart_config(id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    hf = transformers.BartForSequenceClassification(config).eval()
    hf.save_pretrained(folder)
    return hf, folder, load_hf_folder(folder)


def bart_batch():
    """<s> ids </s> right-padded, one </s> a row (BART pools the last </s>)."""
    g = torch.Generator().manual_seed(2)
    rows = [[0, *torch.randint(5, 90, (n,), generator=g).tolist(), 2] for n in (9, 5, 2)]
    ids = torch.tensor([row + [1] * (11 - len(row)) for row in rows])
    return ids, (ids != 1).long()


def test_bart_classifier_matches_transformers_and_round_trips(bart_classifier, tmp_path):
    hf, _, run = bart_classifier
    assert (run.kind, run.config.family, run.config.head, run.labels) == ("classify", "encoder-decoder", "classify", LABELS)
    ids, mask = bart_batch()
    shifted = torch.cat([torch.full((3, 1), 2), ids[:, :-1]], 1)
    real = mask.bool()[:, None, None, :]
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask).logits
        ours = run.model(ids, shifted, real, real)
    assert ours.shape == (3, 3) and (ours - expected).abs().max() < 1e-4  # measured: 0
    out = export_hf(run, tmp_path / "out")
    again = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(again(ids, attention_mask=mask).logits, expected)
    first, back = run.model.state_dict(), load_hf_folder(out).model.state_dict()
    assert first.keys() == back.keys() and all(torch.equal(first[k], back[k]) for k in first)


def test_classify_command_on_a_bart_classifier(bart_classifier, capsys):
    hf, folder, _ = bart_classifier
    texts = ["the cat sat on the mat", "a dog ran"]
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>")
    with torch.no_grad():
        probs = torch.softmax(hf(**tok(texts, padding=True, return_tensors="pt")).logits, -1)
    capsys.readouterr()
    assert main(["classify", "--model", str(folder), "--top", "3", *texts]) == 0
    for line, row in zip(capsys.readouterr().out.splitlines(), probs):
        shown = line.split()
        printed = {shown[i]: float(shown[i + 1]) for i in range(0, len(shown), 2)}
        assert all(abs(printed[name] - p) <= 0.0005 + 1e-6 for name, p in zip(LABELS, row.tolist()))
    for command in (["trace"], ["explain"], ["attention"], ["report", "--out", str(folder / "r.html")]):
        assert main([*command, "--model", str(folder), "the cat sat"]) == 0, command


QA_CASES = ["gpt2", "llama", "qwen2", "mistral", "qwen3"]


def spans(out):
    return torch.stack([out.start_logits, out.end_logits], dim=1)  # [B, 2, T] as ours


@pytest.fixture(scope="module", params=QA_CASES)
def qa_case(request, tmp_path_factory):
    model_type = request.param
    config_name, settings = FAMILIES[model_type]
    folder = tmp_path_factory.mktemp("qa") / model_type
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**settings, vocab_size=VOCAB, initializer_range=0.2)
    hf = getattr(transformers, CLASS_PREFIX[model_type] + "ForQuestionAnswering")(config).eval()
    hf.save_pretrained(folder)
    tokenizer(folder / "tokenizer.json", model_type)
    return model_type, hf, load_hf_folder(folder)


def test_decoder_span_heads_match_transformers_and_round_trip(qa_case, tmp_path):
    model_type, hf, run = qa_case
    assert (run.kind, run.config.family, run.config.head, run.labels) == ("qa", "decoder-only", "qa", [])
    assert not hasattr(run.model, "lm_head")
    ids, mask = padded_batch(run.config.pad_id)
    with torch.no_grad():
        expected = spans(hf(ids, attention_mask=mask))
        ours = run.model(ids, mask.bool()[:, None, None, :])
    assert ours.shape == expected.shape == (3, 2, 10)
    assert (ours - expected).transpose(1, 2)[mask.bool()].abs().max() < 1e-4  # measured: below 1e-6
    out = export_hf(run, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["architectures"] == [CLASS_PREFIX[model_type] + "ForQuestionAnswering"]
    again = transformers.AutoModelForQuestionAnswering.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(spans(again(ids, attention_mask=mask)), expected)
    back = load_hf_folder(out)
    assert back.kind == "qa"
    ours, theirs = run.model.state_dict(), back.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_bart_span_head_reads_the_decoder_and_matches_transformers(tmp_path):
    folder = tmp_path / "bart-qa"
    torch.manual_seed(0)
    hf = transformers.BartForQuestionAnswering(bart_config()).eval()
    hf.save_pretrained(folder)
    bart_tokenizer(folder / "tokenizer.json")
    run = load_hf_folder(folder)
    assert (run.kind, run.config.family, run.config.head) == ("qa", "encoder-decoder", "qa")
    assert not hasattr(run.model, "lm_head")
    ids, mask = bart_batch()
    # transformers' decoder reads input_ids shifted right (shift_tokens_right) with no padding mask.
    shifted = torch.cat([torch.full((3, 1), run.framing.decoder_start), ids[:, :-1]], 1)
    with torch.no_grad():
        expected = spans(hf(ids, attention_mask=mask))
        ours = run.model(ids, shifted, mask.bool()[:, None, None, :])
    assert ours.shape == expected.shape == (3, 2, 11)
    assert (ours - expected).transpose(1, 2)[mask.bool()].abs().max() < 1e-4  # measured: below 1e-6
    out = export_hf(run, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BartForQuestionAnswering"]
    again = transformers.AutoModelForQuestionAnswering.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(spans(again(ids, attention_mask=mask)), expected)
    first, back = run.model.state_dict(), load_hf_folder(out).model.state_dict()
    assert first.keys() == back.keys() and all(torch.equal(first[k], back[k]) for k in first)



def test_train_init_from_a_bart_span_folder_keeps_the_encoder_decoder_and_exports(tmp_path):
    folder = tmp_path / "bart-qa"
    torch.manual_seed(0)
    config = bart_config()
    config.max_position_embeddings = 256  # toy-qa pairs run to 131 pieces with this small BPE
    transformers.BartForQuestionAnswering(config).save_pretrained(folder)
    bart_tokenizer(folder / "tokenizer.json")
    out = tmp_path / "tuned"
    assert main(["train", "--task", "toy-qa", "--init", str(folder), "--steps", "3", "--eval-every", "3",
                 "--eval-examples", "8", "--examples", "0", "--out", str(out), "--no-progress"]) == 0
    run = load_run(out)
    assert (run.config.family, run.config.head) == ("encoder-decoder", "qa")
    exported = export_hf(run, tmp_path / "exported")
    assert json.loads((exported / "config.json").read_text())["architectures"] == ["BartForQuestionAnswering"]
