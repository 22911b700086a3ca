"""Every built-in task's run, with its default preset (small-bert for the encoder tasks, whose default
small-encoder no BERT class can hold) and word-level tokenizer, exports to a folder that transformers
loads with the same logits and whose tokenizer.json gives the same ids; so does a toy-qa run with a
decoder-only preset (GPT-2's and LLaMA's ...ForQuestionAnswering)."""

import dataclasses
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from glassformer.cli import main  # noqa: E402
from glassformer.framing import sequence_ids, source_ids, target_ids  # noqa: E402
from glassformer.models import build_model  # noqa: E402
from glassformer.load import load_model
from glassformer.run_folder import save_run  # noqa: E402
from glassformer.train.config import TrainConfig  # noqa: E402
from glassformer.tasks.qa import frame_qa, span_logits  # noqa: E402
from glassformer.data.tasks import get_task  # noqa: E402
from glassformer.train.setup import build_tokenizers, label_set, model_config_for  # noqa: E402

transformers.logging.set_verbosity_error()
# task -> the Hugging Face class its run exports to
EXPORTS = {
    "toy-translation": "BlenderbotForConditionalGeneration",  # small-seq2seq is pre-norm
    "grammar-lm": "GPT2LMHeadModel",
    "grammar-mlm": "BertForMaskedLM",
    "toy-sentiment": "BertForSequenceClassification",
    "toy-ner": "BertForTokenClassification",
    "toy-qa": "BertForQuestionAnswering",
}


def texts_of(kind, examples):
    if kind == "seq2seq":
        return [e.source for e in examples]
    if kind == "tag":
        return [" ".join(e.tokens) for e in examples]
    if kind == "qa":
        return [(e.question, e.context) for e in examples]
    return [e.text for e in examples]


def glassformer_ids(run, kind, text):
    tokenizer = run.tokenizer
    if kind == "seq2seq":
        return source_ids(tokenizer, text, run.framing)
    if kind == "qa":
        feature = frame_qa(tokenizer, *text, max_len=run.config.max_len, framing=run.framing)
        return feature.ids, feature.segments
    return sequence_ids(tokenizer, text, run.framing, end=kind != "lm")


def prepare(name, preset=None):
    """What `train` sets up for the task (tokenizer, preset fitted to it: by default small-bert for an
    encoder task, else the task's default), on 300 of its examples instead of thousands: the
    architecture is the same, the vocabulary smaller."""
    task = dataclasses.replace(get_task(name), sizes=(300, 3, 3))
    splits = task.splits(0)
    config = TrainConfig(task=name)
    labels = label_set(task.kind, splits)
    source, target = build_tokenizers(config, task.kind, splits)
    if preset is None:
        preset = "small-bert" if task.family == "encoder-only" else task.default_preset
    model_config = model_config_for(config, task.kind, preset, source, target, labels)
    assert source is target
    return dataclasses.make_dataclass("Prepared", ["kind", "splits", "source", "labels", "model_config"])(
        task.kind, splits, source, labels, model_config)


@pytest.mark.parametrize("task", list(EXPORTS))
def test_every_task_run_exports_with_the_same_logits_and_ids(task, tmp_path, capsys):
    prepared = prepare(task)
    assert get_task(task).default_preset == ("small-seq2seq" if task == "toy-translation" else
                                             "small-lm" if task == "grammar-lm" else "small-encoder")
    torch.manual_seed(0)
    model = build_model(prepared.model_config).eval()
    with torch.no_grad():  # wider than the initial weights, so that every part shows in the logits
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    save_run(tmp_path / "run", model, prepared.model_config, prepared.kind, prepared.source, None, prepared.labels)
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    architecture = EXPORTS[task]
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [architecture]
    assert f"model of kind {prepared.kind}" in capsys.readouterr().out
    run = load_model(tmp_path / "run")
    hf = getattr(transformers, architecture).from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(tmp_path / "hf")

    kind = prepared.kind
    texts = texts_of(kind, prepared.splits.valid[:3])
    pairs = ([t[0] for t in texts], [t[1] for t in texts]) if kind == "qa" else (texts,)
    batch = tokenizer(*pairs, padding=True, return_tensors="pt", return_token_type_ids=kind == "qa")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for i, (row, text, n) in enumerate(zip(ids.tolist(), texts, mask.sum(1).tolist())):
        expected = glassformer_ids(run, kind, text)
        if kind == "qa":  # the pair template gives glassformer's segments too
            expected, segments = expected
            assert batch["token_type_ids"][i].tolist()[:n] == segments
        assert row[:n] == expected and set(row[n:]) <= {run.tokenizer.pad_id}
    real = mask.bool()
    with torch.no_grad():
        if kind == "seq2seq":
            decoder = [target_ids(run.tokenizer, e.target, run.framing)[0] for e in prepared.splits.valid[:3]]
            width = max(map(len, decoder))
            tgt = torch.tensor([d + [run.tokenizer.pad_id] * (width - len(d)) for d in decoder])
            ours = run.model(ids, tgt)
            theirs = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=tgt).logits
            real = tgt != run.tokenizer.pad_id
        elif kind == "qa":
            ours = run.model(ids, segments=batch["token_type_ids"]).transpose(1, 2)
            out = hf(input_ids=ids, attention_mask=mask, token_type_ids=batch["token_type_ids"])
            theirs = torch.stack([out.start_logits, out.end_logits], dim=-1)
        else:
            ours = run.model(ids)
            theirs = hf(input_ids=ids, attention_mask=mask).logits
    if kind == "classify":
        assert ours.shape == theirs.shape == (3, len(prepared.labels))
        assert (ours - theirs).abs().max() < 1e-4
    else:
        assert ours.shape == theirs.shape
        assert (ours - theirs)[real].abs().max() < 1e-4


def test_a_small_encoder_run_is_refused_in_one_line(tmp_path, capsys):
    prepared = prepare("toy-sentiment", preset="small-encoder")
    model = build_model(prepared.model_config).eval()
    save_run(tmp_path / "run", model, prepared.model_config, prepared.kind, prepared.source, None, prepared.labels)
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("glassformer export: error: cannot export as bert:") and error.count("\n") == 1


@pytest.mark.parametrize("preset, architecture", [("tiny-lm", "GPT2ForQuestionAnswering"),
                                                  ("tiny-llama", "LlamaForQuestionAnswering")])
def test_a_decoder_qa_run_exports_with_the_same_span_logits_and_ids(preset, architecture, tmp_path, capsys):
    prepared = prepare("toy-qa", preset=preset)
    assert (prepared.model_config.family, prepared.model_config.head, prepared.model_config.n_segments) == (
        "decoder-only", "qa", 0)
    torch.manual_seed(0)
    model = build_model(prepared.model_config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    save_run(tmp_path / "run", model, prepared.model_config, "qa", prepared.source, None, [])
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [architecture]
    run = load_model(tmp_path / "run")
    hf = transformers.AutoModelForQuestionAnswering.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(tmp_path / "hf")
    texts = texts_of("qa", prepared.splits.valid[:3])
    batch = tokenizer([t[0] for t in texts], [t[1] for t in texts], padding=True, return_tensors="pt")
    assert "token_type_ids" not in batch  # GPT-2 would add a token-type embedding from them
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for row, text, n in zip(ids.tolist(), texts, mask.sum(1).tolist()):
        assert row[:n] == glassformer_ids(run, "qa", text)[0]
    with torch.no_grad():
        out = hf(**batch)
        theirs = torch.stack([out.start_logits, out.end_logits], dim=1)
        ours = span_logits(run.model, ids, torch.zeros_like(ids), ids, mask.bool())
    assert ours.shape == theirs.shape and (ours - theirs).transpose(1, 2)[mask.bool()].abs().max() < 1e-4
