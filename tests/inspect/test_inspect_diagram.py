"""The report's diagram follows each model's own structure; its tensors are the recorded ones."""

import base64

import numpy as np
import pytest
import torch
from tiny_models import tiny_inputs, tiny_model

from glassformer.inspect.diagram import build_diagram
from glassformer.inspect.recorder import record
from glassformer.inspect.report import build_report
from glassformer.inspect.report_tensors import tensor_entries
from glassformer.inspect.subject import from_preset


def _diagram(model):
    inputs = tuple(x[:1] for x in tiny_inputs(model))
    with record(model, values=True) as recording:
        model(*inputs)
    return build_diagram(model, recording.records), recording


def _labels(column):
    out = []
    for part in column["parts"]:
        out.append([f"{part['n_layers']}x"] + [b["label"] for b in part["boxes"]] if "stack" in part else part["label"])
    return out


def test_pre_and_post_norm_layers_are_drawn_as_they_run():
    pre, _ = _diagram(tiny_model("tiny-seq2seq"))
    post, _ = _diagram(tiny_model("tiny-seq2seq", norm="post"))
    assert [c["name"] for c in pre["columns"]] == ["encoder", "decoder"]
    assert _labels(pre["columns"][0]) == [
        "token embedding", "positional encoding", "⊕ embedding + position",
        ["2x", "LayerNorm", "multi-head self-attention", "add (residual)", "LayerNorm", "feed-forward network", "add (residual)"],
        "final LayerNorm → encoder output",
    ]
    assert _labels(post["columns"][0])[3] == ["2x", "multi-head self-attention", "add & norm", "feed-forward network", "add & norm"]
    assert _labels(post["columns"][0])[4] == "encoder output"  # post-norm: no final norm
    decoder = _labels(post["columns"][1])
    assert decoder[3] == ["2x", "masked multi-head self-attention", "add & norm",
                          "multi-head cross-attention (queries: decoder, keys/values: encoder output)", "add & norm",
                          "feed-forward network", "add & norm"]
    assert decoder[-2:] == ["linear (output projection)", "softmax"]


def test_decoder_only_and_encoder_only_models_get_one_column_without_cross_attention():
    lm, _ = _diagram(tiny_model("tiny-lm", n_layers=3))
    [column] = lm["columns"]
    assert column["name"] == "decoder"
    stack = [p for p in column["parts"] if "stack" in p][0]
    assert stack["n_layers"] == 3 and "cross" not in " ".join(b["label"] for b in stack["boxes"])
    assert _labels(column)[1] == "learned positions" and _labels(column)[-2:] == ["linear (output projection)", "softmax"]
    encoder, _ = _diagram(tiny_model("tiny-encoder"))
    [column] = encoder["columns"]
    assert column["name"] == "encoder" and "softmax" not in _labels(column)


def _unpack(entry):
    return np.frombuffer(base64.b64decode(entry["data"]), dtype="<f2").astype(np.float64).reshape(entry["grid"])


def test_stored_tensors_are_the_recorded_ones_to_float16_precision():
    model = tiny_model("tiny-seq2seq")
    _, recording = _diagram(model)
    entries = tensor_entries(recording.records, "encoder-decoder")
    assert len(entries) == len(recording.records) == 116
    for r in recording.records:
        entry, value = entries[r.name], r.value[0].double()
        finite = value[torch.isfinite(value)]
        assert entry["stats"]["max"] == pytest.approx(float(finite.max()), abs=1e-4)
        assert entry["stats"]["std"] == pytest.approx(float(finite.std(unbiased=False)), abs=1e-4)
        if entry.get("view_of"):  # [T, A] stored once, as its heads [H, T, D]
            heads = _unpack(entries[entry["view_of"]])
            value = value.numpy()
            np.testing.assert_allclose(heads.transpose(1, 0, 2).reshape(value.shape), value, rtol=1e-3, atol=1e-4)
            continue
        stored = _unpack(entry)
        expected = value.reshape(stored.shape).numpy()
        np.testing.assert_allclose(stored, expected, rtol=1e-3, atol=1e-4)
    masked = entries["decoder.layers.0.self_attn.hook_masked"]
    assert masked["stats"]["masked"] == 4 * (5 * 4 // 2)  # four heads, the causal mask above the diagonal
    assert entries["encoder.layers.0.self_attn.hook_q"]["shape"] == "[B=1, S=7, A=64]"
    assert entries["decoder.layers.0.cross_attn.hook_k"]["shape"] == "[B=1, S=7, A=64]"
    assert entries["lm_head.hook_logits"]["note"] is None


def test_big_tensors_are_cut_with_a_note():
    model = tiny_model("tiny-lm", d_ff=600)
    _, recording = _diagram(model)
    entries = tensor_entries(recording.records, "decoder-only")
    hidden = entries["decoder.layers.0.ffn.hook_hidden"]
    assert hidden["grid"] == [1, 7, 512] and hidden["note"] == "shown: first 512 of 600 d_ff features"
    assert hidden["stats"]["count"] == 7 * 600  # statistics over the whole tensor


def test_logit_lens_and_panels_in_the_report():
    subject = from_preset("tiny-lm", "a b c d")
    panel = {"title": "ablation", "note": "zeroed heads", "columns": ["head", "loss"], "rows": [["L0H1", 1.25]]}
    data = build_report(subject, "a b c d", max_steps=2, panels=[panel])
    assert data["panels"] == [panel]
    lens = data["lens"]
    assert lens["rows"] == ["embeddings", "after layer 0", "after layer 1"]
    ids = torch.tensor([data["inputs"][0]["ids"]])
    with torch.no_grad():
        probs = torch.softmax(subject.model(ids)[0], dim=-1)
    top = probs.max(dim=-1)
    assert [p for _, p in lens["top"][-1]] == pytest.approx(top.values.tolist(), abs=1e-4)  # the last row is the model's own
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        build_report(subject, "a b c d", max_steps=2, panels=[{**panel, "rows": [["x"]]}])


def test_an_imported_gpt2_is_drawn_and_its_numbers_are_hugging_faces(tmp_path):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=99, n_positions=64,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.2)
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path / "gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["the cat sat on the mat", "a dog ran in the park"] * 4,
                            trainers.BpeTrainer(vocab_size=99, special_tokens=["<|endoftext|>"], show_progress=False))
    tok.save(str(tmp_path / "gpt2" / "tokenizer.json"))
    from glassformer.inspect.subject import from_run

    data = build_report(from_run(str(tmp_path / "gpt2")), "the cat sat", max_steps=3)
    [column] = data["diagram"]["columns"]
    assert _labels(column) == [
        "token embedding", "learned positions", "⊕ embedding + position",
        ["2x", "LayerNorm", "masked multi-head self-attention", "add (residual)", "LayerNorm", "feed-forward network",
         "add (residual)"],
        "final LayerNorm → decoder output", "linear (output projection)", "softmax",
    ]
    prompt = data["inputs"][0]["ids"][: len(data["decoding"][0]["prefix"])]  # what step 0 saw
    ids = torch.tensor([prompt])
    with torch.no_grad():
        probs = torch.softmax(hf(ids).logits[0, -1], dim=-1)
    top = probs.topk(5)
    assert [p for _, p in data["decoding"][0]["top"]] == pytest.approx(top.values.tolist(), abs=1e-4)
    assert data["tensors"]["lm_head.hook_logits"]["shape"] == f"[B=1, T={len(data['inputs'][0]['ids'])}, V=99]"
