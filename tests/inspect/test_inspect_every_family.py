"""The inspection commands on the RMSNorm families, as tiny random run folders: LLaMA (rotary
positions, grouped-query heads, SwiGLU; a language model and a last-token classifier) and T5
(relative position bias, gated GELU; v1.0's scaled tied head for the lens). `lens`, `patch`,
`ablate`, `explain --model`, `trace`, `attention` and `report` print the model's own numbers."""

import io
import json
import re
from contextlib import redirect_stdout

import pytest
import torch

from glassformer.cli.main import main
from glassformer.config import get_preset
from glassformer.inspect.ablate import ablate, feedforward, head
from glassformer.inspect.lens import logit_lens
from glassformer.inspect.recorder import record
from glassformer.load import load_model
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer
from tests.tiny_models import tiny_inputs, tiny_model

T5_V10 = dict(tie_output=True, scale_output=True, gated_ffn=False, activation="relu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("family-runs")
    tok = WordTokenizer.train(["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn ."])
    paths = {}
    for name, kind, preset, changes, labels in [
        ("llama", "lm", "tiny-llama", {}, None),
        ("llama-classify", "classify", "tiny-llama", dict(head="classify", n_labels=2), ["neg", "pos"]),
        ("t5", "seq2seq", "tiny-t5", {}, None),
    ]:
        torch.manual_seed(0)
        config = get_preset(preset).replace(vocab_size=tok.vocab_size, max_len=64, **changes)
        paths[name] = str(save_run(root / name, build_model(config).eval(), config, kind, tok, labels=labels))
    return paths


def _out(argv) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _ids(run, *words, end=False):
    tok = run.tokenizer
    return torch.tensor([[tok.start_id, *tok.encode(" ".join(words)), *([tok.end_id] if end else [])]])


def _t5_inputs(run, source: str, target: str = ""):
    tok = run.tokenizer
    return torch.tensor([[*tok.encode(source), tok.end_id]]), torch.tensor([[tok.start_id, *tok.encode(target)]])


@pytest.mark.parametrize("preset, changes", [("tiny-llama", {}), ("tiny-t5", {}), ("tiny-t5", T5_V10)])
def test_lens_starts_at_the_embeddings_read_out_and_ends_at_the_models_logits(preset, changes):
    model = tiny_model(preset, **changes)
    inputs = tiny_inputs(model, batch=1)
    lens = logit_lens(model, *inputs)
    with torch.no_grad():
        logits = model(*inputs)
        embedded = model.tgt_embed(inputs[1]) if len(inputs) == 2 else model.embed(inputs[0])
        first = model.lm_head(model.decoder.final_norm(embedded))  # T5 v1.0's head scales by d_model**-0.5 itself
    assert lens.shape == (3, *logits.shape)
    torch.testing.assert_close(lens[-1], logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(lens[0], first, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, argv, positions", [
    ("llama", [], ["<start>", "the", "cat", "sat"]),
    ("t5", ["--target", "a dog"], ["<start>", "a", "dog"]),
])
def test_lens_command_last_row_is_the_models_own_choice(runs, name, argv, positions):
    out = json.loads(_out(["lens", "--model", runs[name], "the cat sat", "--json", *argv]))
    run = load_model(runs[name])
    inputs = _t5_inputs(run, "the cat sat", "a dog") if name == "t5" else (_ids(run, "the cat sat"),)
    with torch.no_grad():
        chosen = run.model(*inputs)[0].argmax(-1)
    assert out["positions"] == positions and len(out["rows"]) == 3
    assert [cell[0]["token"] for cell in out["rows"][-1]["top"]] == [run.tokenizer.id_to_token(int(i)) for i in chosen]


def test_patch_reads_llama_and_t5_residual_streams(runs):
    patch = lambda name, *argv: json.loads(_out(["patch", "--model", runs[name], "--json", *argv]))  # noqa: E731
    texts = ["--clean", "the cat sat", "--corrupt", "the dog sat"]
    # A LLaMA LM: no position vector is added, so the stream starts at the token embeddings.
    out = patch("llama", *texts)
    assert out["side"] == "decoder" and out["points"][0] == "embed.hook_tokens"
    assert out["residual"][0] == pytest.approx([0, 0, 1, 0], abs=1e-5)
    assert out["residual"][2] == pytest.approx([0, 0, 0, 1], abs=1e-5)
    assert list(out["heads"]) == ["decoder.self_attn"] and len(out["heads"]["decoder.self_attn"][0]) == 4
    # A LLaMA classifier reads its last token (<end>): its decoder's stream is patched.
    out = patch("llama-classify", *texts, "--answer", "pos", "--wrong", "neg")
    assert out["side"] == "decoder" and out["positions"] == ["<start>", "the", "cat/dog", "sat", "<end>"]
    assert out["residual"][2] == pytest.approx([0, 0, 0, 0, 1], abs=1e-5)
    # T5: the source differs, so the encoder is patched by default; the decoder on request.
    out = patch("t5", *texts)
    assert out["side"] == "encoder" and out["positions"] == ["the", "cat/dog", "sat", "<end>"]
    assert out["residual"][0] == pytest.approx([0, 1, 0, 0], abs=1e-5)
    assert list(out["heads"]) == ["encoder.self_attn", "decoder.self_attn", "decoder.cross_attn"]
    out = patch("t5", *texts, "--side", "decoder", "--target", "a")
    assert out["positions"] == ["<start>", "a"] and out["points"][0] == "tgt_embed.hook_tokens"
    assert out["residual"][0] == pytest.approx([0, 0], abs=1e-6)
    assert out["residual"][2] == pytest.approx([0, 1], abs=1e-5)
    # The gradient estimate is exactly 0 where the clean and corrupted embeddings agree.
    out = patch("t5", *texts, "--estimate")
    assert [out["residual"][0][i] for i in (0, 2, 3)] == [0, 0, 0] and out["residual"][0][1] != 0


def test_ablate_on_a_llama_classifier_and_t5_matches_the_library(runs):
    out = json.loads(_out(["ablate", "--model", runs["llama-classify"], "--head", "0.1", "--answer", "pos",
                           "the cat sat", "--json"]))
    run = load_model(runs["llama-classify"])
    assert out["ablated"] == ["decoder.layers.0.self_attn head 1"] and out["wrong"] == "neg"
    with torch.no_grad(), ablate(run.model, head("decoder.layers.0.self_attn", 1)):
        after = run.model(_ids(run, "the cat sat", end=True))[0].softmax(-1)
    assert out["after"]["p_answer"] == pytest.approx(float(after[1]), abs=1e-6)
    out = json.loads(_out(["ablate", "--model", runs["t5"], "--head", "cross.1.2", "--ffn", "decoder.0",
                           "--target", "a", "the cat sat", "--json"]))
    run = load_model(runs["t5"])
    assert out["ablated"] == ["decoder.layers.1.cross_attn head 2", "decoder.layers.0.ffn"]
    with torch.no_grad(), ablate(run.model, head("decoder.layers.1.cross_attn", 2)), \
            ablate(run.model, feedforward("decoder.layers.0.ffn")):
        after = run.model(*_t5_inputs(run, "the cat sat", "a"))[0, -1].softmax(-1)
    assert out["after"]["p_answer"] == pytest.approx(float(after[run.tokenizer.token_to_id(out["answer"])]), abs=1e-6)


@pytest.mark.parametrize("name", ["llama", "t5"])
def test_explain_trace_attention_and_report_print_the_models_numbers(runs, tmp_path, name):
    run = load_model(runs[name])
    inputs = _t5_inputs(run, "the cat sat") if name == "t5" else (_ids(run, "the cat sat"),)
    with torch.no_grad():
        probs = run.model(*inputs)[0, -1].softmax(-1)
    # explain --model: the five most probable next (or first target) tokens, as the model ranks them.
    text = _out(["explain", "--model", runs[name], "the cat sat"])
    listed = re.findall(r"id (\d+)  logit \S+  probability (\S+)", text)
    assert [int(i) for i, _ in listed] == probs.topk(5).indices.tolist()
    assert [float(p) for _, p in listed] == pytest.approx(probs.topk(5).values.tolist(), abs=0.5e-4)
    logits_block = text.split("← lm_head.hook_logits")[1].splitlines()
    assert logits_block[2].split()[0] == "<start>"  # the decoder's positions, not T5's source ("the")
    # trace: the logits' named shape.
    rows = json.loads(_out(["trace", "--model", runs[name], "the cat sat", "--json"]))["rows"]
    t = inputs[-1].size(1)
    assert rows[-2]["where"] == "lm_head.hook_logits" and rows[-2]["named_shape"] == f"[B=1, T={t}, V=20]"
    # attention: T5's cross-attention of a given target, as recorded.
    if name == "t5":
        src, tgt = _t5_inputs(run, "the cat sat", "a dog")
        with record(run.model, names="decoder.layers.1.cross_attn.hook_probs", values=True) as rec:
            run.model(src, tgt)
        expected = rec.value("decoder.layers.1.cross_attn.hook_probs", step=0)[0, 3]  # [T, S]
        text = _out(["attention", "--model", runs[name], "--kind", "cross", "--layer", "1", "--head", "3",
                     "--target", "a dog", "--values", "the cat sat"])
        printed = [[float(x) for x in line.split()[1:]] for line in text.split("shade:")[0].strip().splitlines()[-3:]]
        assert torch.tensor(printed) == pytest.approx(expected, abs=0.005)
    # report: the lens's last row at the decoded positions is what each decoding step chose.
    out = tmp_path / "report.html"
    assert main(["report", "--model", runs[name], "--out", str(out), "--max-steps", "4", "the cat sat"]) == 0
    data = json.loads(re.search(r'<script id="gf-data" type="application/json">(.*?)</script>',
                                out.read_text(encoding="utf-8"), re.S).group(1))
    assert data["model"]["positions"] == ("relative" if name == "t5" else "rotary")
    assert data["attention"]["kinds"] == (["self", "decoder", "cross"] if name == "t5" else ["decoder"])
    chosen = [step["chosen"] for step in data["decoding"]]
    last = [cell[0] for cell in data["lens"]["top"][-1]]
    assert len(chosen) == 4 and last[len(last) - len(chosen):] == chosen
