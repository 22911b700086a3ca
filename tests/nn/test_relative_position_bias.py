"""T5's relative position bias and unscaled attention: buckets, one bias per stack, the fused
kernel against step by step, the KV cache, hook points and gradients."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.errors import ConfigError
from glassformer.inspect.recorder import record
from glassformer.inspect.step_by_step import step_by_step
from glassformer.models import build_model, count_parameters
from glassformer.nn.relative_position_bias import relative_bucket


def tiny(**changes):
    base = dict(vocab_size=50, d_model=32, n_heads=4, d_ff=48, n_layers=2, relative_buckets=8, relative_max_distance=12)
    return get_preset("small-t5").replace(**{**base, **changes})


def batch():
    src = torch.randint(3, 50, (3, 9))
    src[1, 6:] = 0
    tgt = torch.randint(3, 50, (3, 7))
    tgt[:, 0] = 0
    return src, tgt


def test_buckets_by_hand():
    # 8 buckets, max distance 12. Encoder: 4 per direction, distances 0 and 1 exact, then
    # 2 + floor(log(n / 2) / log(12 / 2) * 2): n = 5 -> 2 + 1, n >= 12 -> the last; keys after
    # the query add 4.
    distance = torch.tensor([-20, -12, -5, -2, -1, 0, 1, 2, 5, 12, 20])
    assert relative_bucket(distance, True, 8, 12).tolist() == [3, 3, 3, 2, 1, 0, 5, 6, 7, 7, 7]
    # Decoder: 8 buckets for the past, 0..3 exact, then 4 + floor(log(n / 4) / log(3) * 4):
    # n = 5 -> 4; a later key (masked anyway) shares bucket 0.
    assert relative_bucket(distance, False, 8, 12).tolist() == [7, 7, 4, 2, 1, 0, 0, 0, 0, 0, 0]


def test_buckets_match_transformers():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    distance = torch.arange(-300, 300)[None]
    for bidirectional in (True, False):
        for n, far in ((32, 128), (8, 12), (6, 20)):
            expected = t5.T5Attention._relative_position_bucket(distance, bidirectional, n, far)
            assert torch.equal(relative_bucket(distance, bidirectional, n, far), expected)


def test_one_bias_per_stack_shared_by_the_layers_with_hook_shapes():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    src, tgt = batch()
    assert model.encoder.position_bias.bidirectional and not model.decoder.position_bias.bidirectional
    names = [n for n, _ in model.named_parameters() if "position_bias" in n]
    assert names == ["encoder.position_bias.buckets.weight", "decoder.position_bias.buckets.weight"]
    with record(model, values=True) as recording, torch.no_grad():
        model(src, tgt)
    shapes = {r.name: (tuple(r.shape), tuple(r.dims)) for r in recording.records}
    assert shapes["encoder.position_bias.hook_bias"] == ((1, 4, 9, 9), ("B", "H", "T", "S"))
    assert shapes["decoder.position_bias.hook_bias"] == ((1, 4, 7, 7), ("B", "H", "T", "S"))
    assert [r.name for r in recording.records].count("encoder.position_bias.hook_bias") == 1  # once per stack
    # Each layer's scores are its unscaled Q Kᵀ plus that one bias; cross-attention gets none.
    bias = recording.value("encoder.position_bias.hook_bias")
    for i in range(2):
        scores = recording.value(f"encoder.layers.{i}.self_attn.hook_scores")
        assert torch.allclose(recording.value(f"encoder.layers.{i}.self_attn.hook_scaled"), scores + bias)
    cross = "decoder.layers.0.cross_attn."
    assert torch.equal(recording.value(cross + "hook_scaled"), recording.value(cross + "hook_scores"))


def test_fused_equals_step_by_step_and_cached_decoding_equals_the_full_pass():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    src, tgt = batch()
    with torch.no_grad():
        fused = model(src, tgt)
        with step_by_step(model):
            stepwise = model(src, tgt)
        memory = model.encode(src)
        cache = model.new_cache()
        src_mask = (src != 0)[:, None, None, :]
        steps = [model.decode(tgt[:, i:i + 1], memory, src_mask, None, cache, cache_pos=i) for i in range(7)]
    assert (fused - stepwise).abs().max() < 1e-5  # 4e-6 measured
    assert (torch.cat(steps, dim=1) - fused).abs().max() < 1e-5


def test_bias_gradients_through_the_fused_kernel_equal_step_by_step():
    torch.manual_seed(0)
    model = build_model(tiny(dropout=0.0)).train()
    src, tgt = batch()
    tables = [model.encoder.position_bias.buckets.weight, model.decoder.position_bias.buckets.weight]
    fused = torch.autograd.grad(model(src, tgt).square().mean(), tables)
    with step_by_step(model):
        stepwise = torch.autograd.grad(model(src, tgt).square().mean(), tables)
    for a, b in zip(fused, stepwise):
        assert a.abs().max() > 0 and torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_unscaled_attention_and_output_scale():
    torch.manual_seed(0)
    config = tiny(tie_output=True, scale_output=True, gated_ffn=False, activation="relu")
    model = build_model(config).eval()
    assert model.lm_head.scale == pytest.approx(32**-0.5)
    src, tgt = batch()
    with record(model, values=True) as recording, torch.no_grad():
        logits = model(src, tgt)
    hidden = recording.value("decoder.hook_out")
    assert torch.allclose(logits, hidden * 32**-0.5 @ model.tgt_embed.token.weight.T, atol=1e-5)


def test_parameter_count_is_arithmetic_of_the_parts():
    c = tiny(n_decoder_layers=3)
    attn, ffn = 4 * c.d_model * c.d_model, 3 * c.d_model * c.d_ff  # no biases; gated: three matrices
    encoder = c.n_layers * (attn + ffn + 2 * c.d_model) + c.d_model + c.relative_buckets * c.n_heads
    decoder = 3 * (2 * attn + ffn + 3 * c.d_model) + c.d_model + c.relative_buckets * c.n_heads
    untied_head = c.vocab_size * c.d_model
    assert count_parameters(build_model(c)) == c.vocab_size * c.d_model + encoder + decoder + untied_head


def test_speed_transform_keeps_the_logits():
    from glassformer.speed import optimize_for_inference

    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    src, tgt = batch()
    with torch.no_grad():
        before = model(src, tgt)
        done = optimize_for_inference(model, small_batch=False)
        after = model(src, tgt)
    assert done.fused_qkv == 4 and (after - before).abs().max() < 1e-5


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(family="decoder-only"), "positions='relative' is built for the encoder-decoder family"),
        (dict(relative_buckets=2), "relative_buckets must be at least 4"),
        (dict(relative_buckets=32, relative_max_distance=16), "relative_max_distance=16 must exceed half"),
    ],
)
def test_invalid_relative_settings_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)


def test_explain_prints_each_heads_bias_and_the_biased_scores():
    from glassformer.inspect.explain import _Writer

    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    src, tgt = batch()
    with record(model, values=True) as recording, torch.no_grad():
        model(src[:1], tgt[:1])
    writer = _Writer(model, None, recording)
    labels, targets = [f"s{i}" for i in range(9)], [f"t{i}" for i in range(7)]
    writer.attention("enc", "encoder.layers.1.self_attn", labels, labels, "X", "X")
    writer.attention("dec", "decoder.layers.0.cross_attn", targets, labels, "Y", "M")
    blocks = {b.key: b for b in writer.items if hasattr(b, "key")}
    bias = recording.value("encoder.position_bias.hook_bias")[0, 2].numpy()
    assert blocks["enc.h2.bias"].values.tolist() == bias.astype("float64").tolist()
    assert blocks["enc.h2.scaled"].title == "head 2: not divided by sqrt(8) (T5: Wq absorbs it) + relative position bias"
    scores = blocks["enc.h2.scores"].values
    assert abs(blocks["enc.h2.scaled"].values - (scores + bias)).max() < 1e-5
    assert "dec.h0.bias" not in blocks  # cross-attention has no position bias


def test_logit_lens_reads_through_the_output_scale():
    from glassformer.inspect.lens import logit_lens

    torch.manual_seed(0)
    model = build_model(tiny(tie_output=True, scale_output=True)).eval()
    src, tgt = batch()
    with torch.no_grad():
        readings = logit_lens(model, src, tgt)
        logits = model(src, tgt)
    assert readings.shape == (3, 3, 7, 50)  # the embeddings and two layers
    assert (readings[-1] - logits).abs().max() < 1e-5
