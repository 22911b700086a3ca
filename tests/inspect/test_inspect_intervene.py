"""intervene: values at hook points changed from outside, in forward passes and while decoding."""

import pytest
import torch

from glassformer.errors import UserError
from glassformer.generate import Stopping, generate_lm
from glassformer.inspect import intervene, record
from glassformer.speed import optimize_for_inference

from tiny_models import tiny_inputs, tiny_model

FAMILIES = ["tiny-seq2seq", "tiny-lm", "tiny-encoder"]


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("preset", FAMILIES)
def test_zeroing_every_feed_forward_hidden_layer_equals_zero_w2_weights(preset):
    model = tiny_model(preset)
    twin = tiny_model(preset)
    with torch.no_grad():
        for name, parameter in twin.named_parameters():
            if name.endswith("ffn.w_2.weight"):
                parameter.zero_()  # W2 · 0 + b2 = b2: what zeroing the hidden units gives
        expected = twin(*tiny_inputs(twin))
        with intervene(model, {"*.ffn.hook_hidden": lambda value, hook: torch.zeros_like(value)}) as names:
            got = model(*tiny_inputs(model))
        plain = model(*tiny_inputs(model))
    n_layers = len(model.decoder.layers if preset == "tiny-lm" else model.encoder.layers) * (2 if preset == "tiny-seq2seq" else 1)
    assert len(names) == n_layers and all(n.endswith("ffn.hook_hidden") for n in names)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(plain, got)  # and the block's end restored the model
    assert _hook_count(model) == 0


@pytest.mark.parametrize("prepared", [False, True])
def test_steering_while_generating_fires_at_every_step_and_moves_the_logits_by_hand(prepared):
    model = tiny_model("tiny-lm", tie_output=False)
    plain_twin = tiny_model("tiny-lm", tie_output=False)
    if prepared:
        optimize_for_inference(model)
    shift = torch.randn(64) * 3
    seen = []

    def steer(value, hook):
        seen.append((hook.name, tuple(value.shape)))
        return value + shift

    stopping = Stopping(max_new_tokens=5)
    with intervene(model, {"decoder.hook_out": steer}):
        steered = generate_lm(model, [[5, 6, 7]], stopping=stopping, keep_logits=True)[0]
    plain = generate_lm(plain_twin, [[5, 6, 7]], stopping=stopping, keep_logits=True)[0]
    # One firing for the prompt (only its last position is projected) and one per new token after it.
    assert seen == [("decoder.hook_out", (1, 3, 64))] + [("decoder.hook_out", (1, 1, 64))] * 4
    # The decoder output feeds only the bias-free output projection: the first logits move by shift Wᵀ.
    moved = plain.logits[0] + shift @ plain_twin.lm_head.proj.weight.T
    torch.testing.assert_close(steered.logits[0], moved, atol=1e-4, rtol=0)
    assert steered.tokens != plain.tokens  # a large shift changes what is generated
    assert _hook_count(model) == 0


def test_attention_probabilities_can_be_replaced_and_record_sees_the_replacement():
    model = tiny_model("tiny-encoder")
    uniform = lambda probs, hook: torch.full_like(probs, 1.0 / probs.size(-1))  # noqa: E731
    with torch.no_grad(), intervene(model, {"encoder.layers.0.self_attn.hook_probs": uniform}):
        with record(model, names="encoder.layers.0.self_attn.hook_*", values=True) as rec:
            model(*tiny_inputs(model))
    probs, v = rec.value("encoder.layers.0.self_attn.hook_probs"), rec.value("encoder.layers.0.self_attn.hook_v_heads")
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / 7))
    torch.testing.assert_close(rec.value("encoder.layers.0.self_attn.hook_context"), v.mean(dim=2, keepdim=True).expand_as(v),
                               atol=1e-6, rtol=0)


def test_mistakes_are_clear_and_leave_no_hook_behind():
    model = tiny_model("tiny-lm")
    (ids,) = tiny_inputs(model)
    with pytest.raises(UserError, match=r"no hook point matches 'decoder.layers.9.hook_q'; e.g. decoder.layers.0.self_attn.hook_q"):
        with intervene(model, {"decoder.layers.9.hook_q": lambda v, h: v}):
            pass
    with pytest.raises(ValueError, match=r"intervention at decoder.hook_out returned \(2, 7\); expected a tensor of shape \(2, 7, 64\)"):
        with intervene(model, {"decoder.hook_out": lambda v, h: v.sum(-1)}):
            model(ids)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(model, {"*.hook_q": lambda v, h: v * 0}):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    assert not any(getattr(m, "step_by_step", False) for m in model.modules())
