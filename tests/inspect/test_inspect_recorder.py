import math

import pytest
import torch

from glassformer.config import get_preset
from glassformer.inspect.decoding import decode_steps
from glassformer.inspect.recorder import matcher, record
from glassformer.inspect.step_by_step import switches
from glassformer.models import build_model

FAMILY_PRESETS = ["tiny-seq2seq", "tiny-lm", "tiny-encoder", "article-b"]


def _model(preset):
    torch.manual_seed(0)
    config = get_preset(preset)
    if preset.startswith("tiny"):
        config = config.replace(vocab_size=40, max_len=32)
    return build_model(config).eval()


def _run(model):
    """A forward on fixed ids with a padded source/sequence, so masks matter."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (2, 7), generator=g)
    ids[1, 5:] = model.config.pad_id
    if model.config.family == "encoder-decoder":
        tgt = torch.randint(5, model.config.vocab_size, (2, 5), generator=g)
        return lambda: model(ids, tgt)
    return lambda: model(ids)


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _modes(model):
    return [m.step_by_step for m in switches(model)]


@pytest.mark.parametrize("preset", FAMILY_PRESETS)
@pytest.mark.parametrize(
    "names, values, stepwise",
    [(None, True, True), (None, False, True), ("*hook_probs", True, True), ("*.self_attn.hook_q*", "*q*", False),
     ("*ffn.*", True, False)],
)
def test_recording_changes_no_value_and_chooses_the_attention_path_from_the_selection(preset, names, values, stepwise):
    model = _model(preset)
    forward = _run(model)
    calls = []
    counters = [m.register_forward_hook(lambda m, i, o: calls.append(m.step_by_step)) for m in switches(model)]
    with torch.no_grad():
        plain = forward()
        n_calls = len(calls)
        with record(model, names=names, values=values) as recording:
            recorded = forward()
        after = forward()
    # Each module runs once per forward, recorded or not (nothing is re-run), in the chosen mode.
    assert calls[n_calls:2 * n_calls] == [stepwise] * n_calls and len(calls) == 3 * n_calls
    for counter in counters:
        counter.remove()
    if stepwise:  # the step-by-step path: the same values up to rounding
        assert (recorded - plain).abs().max() <= 1e-5
    else:
        assert torch.equal(plain, recorded)
    assert torch.equal(plain, after)
    assert len(recording) > 0
    assert _hook_count(model) == 0
    assert not any(_modes(model))


def test_every_hook_is_removed_after_an_exception():
    model = _model("tiny-seq2seq")
    with pytest.raises(RuntimeError, match="boom"):
        with record(model, values=True):
            _run(model)()
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    assert not any(_modes(model))


def test_every_hook_is_removed_when_the_model_itself_raises():
    model = _model("tiny-lm")
    too_long = torch.ones(1, model.config.max_len + 1, dtype=torch.long)
    with pytest.raises(Exception, match="longer than"):
        with record(model):
            model(too_long)
    assert _hook_count(model) == 0


def test_names_select_hook_points_by_glob_list_and_callable():
    model = _model("tiny-seq2seq")
    forward = _run(model)
    with torch.no_grad():
        with record(model, names="decoder.layers.*.cross_attn.hook_probs") as by_glob:
            forward()
        with record(model, names=["src_embed.hook_tokens", "lm_head.hook_logits"]) as by_list:
            forward()
        with record(model, names=lambda n: n.endswith("ffn.hook_hidden")) as by_callable:
            forward()
    assert by_glob.names() == ["decoder.layers.0.cross_attn.hook_probs", "decoder.layers.1.cross_attn.hook_probs"]
    assert by_list.names() == ["src_embed.hook_tokens", "lm_head.hook_logits"]
    assert len(by_callable.names()) == 4  # 2 encoder + 2 decoder layers
    assert matcher(False)("x") is False and matcher(None)("x") is True


def test_shapes_always_values_only_where_asked():
    model = _model("tiny-seq2seq")
    with torch.no_grad(), record(model, values="*hook_q") as recording:
        _run(model)()
    q = recording.get("encoder.layers.0.self_attn.hook_q")
    assert q.value is not None and q.shape == (2, 7, 64) and q.dims == ("B", "T", "A")
    probs = recording.get("encoder.layers.0.self_attn.hook_probs")
    assert probs.value is None and probs.shape == (2, 4, 7, 7)
    with pytest.raises(KeyError, match="without its value"):
        recording.value("encoder.layers.0.self_attn.hook_probs")
    with pytest.raises(KeyError, match="nothing recorded"):
        recording.get("no.such.hook")


def test_recorded_values_are_detached_clones():
    model = _model("tiny-lm")
    ids = torch.randint(5, 40, (1, 6))
    with record(model, values=True) as recording:
        model(ids)
    q = recording.value("decoder.layers.0.self_attn.hook_q")
    assert not q.requires_grad
    q.zero_()  # a clone: changing it touches nothing in a second run
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))


def test_attention_steps_are_consistent_and_the_recorded_output_is_what_flowed_on():
    model = _model("tiny-seq2seq")
    forward = _run(model)
    with torch.no_grad(), record(model, values=True) as recording:
        forward()
    for name in ("encoder.layers.0.self_attn", "decoder.layers.1.self_attn", "decoder.layers.0.cross_attn"):
        v = lambda s: recording.value(f"{name}.{s}")  # noqa: E731
        q, k = v("hook_q_heads"), v("hook_k_heads")
        assert torch.allclose(v("hook_scores"), q @ k.transpose(-2, -1), atol=1e-5)
        assert torch.allclose(v("hook_scaled"), v("hook_scores") / math.sqrt(q.size(-1)))
        probs = v("hook_probs")
        assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=1e-6)
        assert torch.allclose(v("hook_context"), probs @ v("hook_v_heads"), atol=1e-5)
        # Every firing is recorded once, in model order.
        order = [r.name.rsplit(".", 1)[1] for r in recording.select(f"{name}.*")]
        assert order == [
            "hook_q", "hook_k", "hook_v", "hook_q_heads", "hook_k_heads", "hook_v_heads", "hook_scores",
            "hook_scaled", "hook_masked", "hook_probs", "hook_context", "hook_merged", "hook_out",
        ]
    masked = recording.value("decoder.layers.0.self_attn.hook_masked")[0, 0]
    assert torch.isinf(masked.triu(1)[masked.triu(1) != 0]).all() and not torch.isinf(masked.tril()).any()
    padded = recording.value("encoder.layers.0.self_attn.hook_probs")[1, :, :, 5:]
    assert torch.equal(padded, torch.zeros_like(padded))  # padding gets no attention
    # tiny-seq2seq is pre-norm: the residual adds the attention output to the embedding sum,
    # bit for bit, which shows the recorded output is the one that flowed on.
    out = recording.value("encoder.layers.0.self_attn.hook_out")
    total = recording.value("encoder.layers.0.self_attn_residual.hook_sum")
    assert torch.equal(total, recording.value("src_embed.hook_sum") + out)


def test_each_forward_and_each_decoding_step_gets_its_own_index():
    model = _model("tiny-seq2seq")
    ids = torch.randint(5, 40, (1, 6))
    with torch.no_grad(), record(model, names=["encoder.hook_out", "decoder.hook_out", "tgt_embed.hook_tokens"]) as rec:
        steps = decode_steps(model, ids, start_id=1, end_id=2, max_steps=4, recording=rec)
    assert rec.n_steps == len(steps) == 4
    assert [r.step for r in rec.select("encoder.hook_out")] == [0]
    assert [r.step for r in rec.select("decoder.hook_out")] == [0, 1, 2, 3]
    assert [r.shape[1] for r in rec.select("tgt_embed.hook_tokens")] == [1, 2, 3, 4]
    lm = _model("tiny-lm")
    with torch.no_grad(), record(lm, names="lm_head.hook_logits") as rec:
        lm(ids)
        lm(ids[:, :3])
    assert [(r.step, r.shape[1]) for r in rec] == [(0, 6), (1, 3)]
