"""Direct logit attribution: the parts and bias terms add up to the logit, and a part's number is its direct effect."""

import pytest
import torch

from glassformer.errors import UserError
from glassformer.inspect.ablate import ablate, feedforward
from glassformer.inspect.attribution import direct_logit_attribution
from tests.tiny_models import tiny_model


@pytest.mark.parametrize("preset, changes, n_parts", [
    ("tiny-lm", {}, 2 + 2 * (4 + 1)),  # pre-norm (GPT-2): tokens, positions, 4 heads and a FFN per layer
    ("tiny-lm", {"norm": "post", "embedding_norm": True, "n_segments": 2, "output_bias": True}, 3 + 2 * 5),
    ("tiny-seq2seq", {}, 2 + 2 * (4 + 4 + 1)),  # decoder side: self and cross heads
    ("article-b", {}, 2 + 2 + 2 + 1),  # post-norm, one layer of two heads
    # RMSNorm families: no centring and no norm bias; positions act inside attention, so the stream
    # has no position part. LLaMA: rotary, grouped-query heads, SwiGLU, no biases at all.
    ("tiny-llama", {}, 1 + 2 * (4 + 1)),
    ("tiny-llama", {"norm": "post", "final_norm": False}, 1 + 2 * (4 + 1)),  # every RMSNorm after a part
    # T5 v1.1: relative position bias, gated GELU, an untied head; and v1.0: ReLU and the tied
    # head that scales the decoder output by d_model**-0.5 (its logits here are about 0.03, so
    # leaving the factor out would miss by ~0.025, far past the 1e-4 of the sum).
    ("tiny-t5", {}, 1 + 2 * (4 + 4 + 1)),
    ("tiny-t5", {"tie_output": True, "scale_output": True, "gated_ffn": False, "activation": "relu"},
     1 + 2 * (4 + 4 + 1)),
])
def test_parts_plus_bias_terms_sum_to_the_logit(preset, changes, n_parts):
    model = tiny_model(preset, **changes)
    ids = torch.randint(5, 32, (2, 6), generator=torch.Generator().manual_seed(4))
    inputs = (ids, ids[:, :4]) if model.config.family == "encoder-decoder" else (ids,)
    result = direct_logit_attribution(model, *inputs, token=7)
    t = inputs[-1].size(1)
    assert result.contributions.shape == (n_parts, 2, t) and len(result.names) == n_parts
    with torch.no_grad():
        expected = model(*inputs)[..., 7]
    torch.testing.assert_close(result.logit, expected, atol=0, rtol=0)
    torch.testing.assert_close(result.total(), expected, atol=1e-4, rtol=0)
    # One token per position (the next one) works alike.
    per_position = direct_logit_attribution(model, *inputs, token=inputs[-1])
    with torch.no_grad():
        expected = model(*inputs).gather(-1, inputs[-1][..., None])[..., 0]
    torch.testing.assert_close(per_position.total(), expected, atol=1e-4, rtol=0)


def test_the_bias_terms_are_named_by_their_parameters():
    result = direct_logit_attribution(tiny_model("tiny-lm"), torch.tensor([[5, 6, 7]]), token=9)
    assert result.names[:3] == ["embed.tokens", "embed.positions", "decoder.layers.0.self_attn.head.0"]
    assert result.bias_names == ["decoder.layers.0.self_attn.w_o.bias", "decoder.layers.0.ffn.w_2.bias",
                                 "decoder.layers.1.self_attn.w_o.bias", "decoder.layers.1.ffn.w_2.bias",
                                 "decoder.final_norm.bias"]
    assert result.top(k=2)[0][0] in result.names


def test_an_rms_norm_model_has_no_norm_bias_and_names_its_gated_networks_last_matrix():
    model = tiny_model("tiny-llama", attn_out_bias=True, ffn_bias=True, output_bias=True, tie_output=False)
    result = direct_logit_attribution(model, torch.tensor([[5, 6, 7]]), token=9)
    assert result.names[:2] == ["embed.tokens", "decoder.layers.0.self_attn.head.0"]
    assert result.bias_names == ["decoder.layers.0.self_attn.w_o.bias", "decoder.layers.0.ffn.w_down.bias",
                                 "decoder.layers.1.self_attn.w_o.bias", "decoder.layers.1.ffn.w_down.bias",
                                 "lm_head.proj.bias"]
    with torch.no_grad():
        torch.testing.assert_close(result.total(), model(torch.tensor([[5, 6, 7]]))[..., 9], atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", ["tiny-lm", "tiny-llama"])
def test_without_a_final_norm_a_last_part_is_exactly_what_removing_it_changes(preset):
    model = tiny_model(preset, final_norm=False)
    ids = torch.tensor([[5, 9, 13, 7, 21]])
    result = direct_logit_attribution(model, ids, token=11)
    part = result.names.index("decoder.layers.1.ffn")
    biases = [result.biases[i] for i, name in enumerate(result.bias_names) if name.startswith("decoder.layers.1.ffn.")]
    with torch.no_grad(), ablate(model, feedforward("decoder.layers.1.ffn")):
        without = model(ids)[..., 11]
    torch.testing.assert_close(result.logit - without, result.contributions[part] + sum(biases),
                               atol=1e-5, rtol=0)


def test_an_encoder_and_a_model_in_training_mode_are_clear_errors():
    with pytest.raises(UserError, match="needs a linear readout"):
        direct_logit_attribution(tiny_model("tiny-encoder", head="mlm"), torch.tensor([[5, 6]]), token=5)
    with pytest.raises(UserError, match="this model's head is 'classify'"):
        direct_logit_attribution(tiny_model("tiny-llama", head="classify", n_labels=2), torch.tensor([[5, 6]]), token=1)
    with pytest.raises(UserError, match="eval mode"):
        direct_logit_attribution(tiny_model("tiny-lm").train(), torch.tensor([[5, 6]]), token=5)
