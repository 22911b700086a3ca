"""Ablation of one head, one feed-forward network or one layer: zero, mean and resample."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.inspect import record
from glassformer.inspect.ablate import ablate, feedforward, head, layer
from glassformer.models import build_model


def _model(preset="tiny-lm", **changes):
    torch.manual_seed(0)
    return build_model(get_preset(preset).replace(vocab_size=40, max_len=64, **changes)).eval()


def _ids(seed=1, batch=2):
    return torch.randint(5, 40, (batch, 7), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset, attention", [("tiny-lm", "decoder.layers.1.self_attn"),
                                               ("tiny-seq2seq", "decoder.layers.0.cross_attn")])
def test_zeroing_a_head_equals_zeroing_its_columns_of_wo(preset, attention):
    model, twin = _model(preset), _model(preset)
    with torch.no_grad():
        twin.get_submodule(attention).w_o.weight[:, 2 * 16:3 * 16] = 0  # head 2 of 4, 16 wide
        ids = _ids()
        args = (ids, ids[:, :5]) if preset == "tiny-seq2seq" else (ids,)
        expected, plain = twin(*args), model(*args)
        with ablate(model, head(attention, 2)):
            got = model(*args)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, plain)


def test_zeroing_a_feedforward_equals_zeroing_its_second_layer():
    model, twin = _model("tiny-encoder"), _model("tiny-encoder")
    with torch.no_grad():
        twin.encoder.layers[0].ffn.w_2.weight.zero_()
        twin.encoder.layers[0].ffn.w_2.bias.zero_()
        with ablate(model, feedforward("encoder.layers.0.ffn")):
            got = model(_ids())
        torch.testing.assert_close(got, twin(_ids()), atol=1e-6, rtol=0)


def test_zeroing_a_pre_norm_layer_passes_its_input_through():
    model = _model()
    with torch.no_grad(), ablate(model, layer(model, "decoder.layers.1")):
        with record(model, names="decoder.layers.*.ffn_residual.hook_sum", values=True) as rec:
            model(_ids())
    torch.testing.assert_close(rec.value("decoder.layers.1.ffn_residual.hook_sum"),
                               rec.value("decoder.layers.0.ffn_residual.hook_sum"), atol=0, rtol=0)


def test_mean_ablation_uses_the_reference_mean_over_batch_and_positions():
    model = _model()
    point = "decoder.layers.0.self_attn.hook_context"
    with torch.no_grad():
        with record(model, names=point, values=True) as ref:
            model(_ids(seed=7, batch=3))
        mean = ref.value(point).mean(dim=(0, 2))  # [H, D]
        with ablate(model, head("decoder.layers.0.self_attn", 1), "mean", lambda: model(_ids(seed=7, batch=3))):
            with record(model, names=point, values=True) as rec:
                model(_ids())
    got = rec.value(point)
    torch.testing.assert_close(got[:, 1], mean[1].expand(2, 7, 16), atol=1e-6, rtol=0)
    with torch.no_grad(), record(model, names=point, values=True) as untouched:
        model(_ids())
    torch.testing.assert_close(got[:, 0], untouched.value(point)[:, 0])  # other heads keep their values


def test_resample_ablation_takes_the_reference_runs_values_and_needs_the_same_shape():
    model = _model()
    point = "decoder.layers.1.ffn.hook_out"
    with torch.no_grad():
        with record(model, names=point, values=True) as ref:
            model(_ids(seed=5))
        with ablate(model, feedforward("decoder.layers.1.ffn"), "resample", lambda: model(_ids(seed=5))):
            with record(model, names=point, values=True) as rec:
                model(_ids())
        torch.testing.assert_close(rec.value(point), ref.value(point), atol=0, rtol=0)
        with pytest.raises(ValueError, match=r"reference run gave \(2, 7, 64\), this run \(1, 7, 64\)"):
            with ablate(model, feedforward("decoder.layers.1.ffn"), "resample", lambda: model(_ids(seed=5))):
                model(_ids(batch=1))


def test_bad_ablations_are_clear_errors():
    model = _model()
    with pytest.raises(UserError, match="unknown ablation 'half'; choose one of: zero, mean, resample"):
        with ablate(model, feedforward("decoder.layers.0.ffn"), "half"):
            pass
    with pytest.raises(UserError, match="mean ablation needs reference inputs"):
        with ablate(model, feedforward("decoder.layers.0.ffn"), "mean"):
            pass
    with pytest.raises(UserError, match=r"head 4 does not exist: decoder.layers.0.self_attn has heads 0-3"):
        with ablate(model, head("decoder.layers.0.self_attn", 4)):
            pass
    with pytest.raises(UserError, match="the model has no layer 'decoder.layers.7'"):
        layer(model, "decoder.layers.7")
    with pytest.raises(UserError, match="no hook point matches 'decoder.layers.5.ffn.hook_out'"):
        with ablate(model, feedforward("decoder.layers.5.ffn")):
            pass
