"""The logit lens reads every layer's residual stream like the last; the last reading is the output."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.inspect.lens import logit_lens
from glassformer.models import build_model


@pytest.mark.parametrize("preset, changes", [
    ("tiny-lm", {}),  # pre-norm: read through the final LayerNorm
    ("tiny-seq2seq", {}),
    ("article-b", {}),  # post-norm without a final norm: read directly
    ("tiny-encoder", {"head": "mlm"}),
])
def test_the_last_reading_is_the_models_output_and_every_layer_is_read(preset, changes):
    torch.manual_seed(0)
    config = get_preset(preset).replace(vocab_size=32, max_len=32, **changes)
    model = build_model(config).eval()
    ids = torch.randint(5, 32, (2, 6), generator=torch.Generator().manual_seed(1))
    inputs = (ids, ids[:, :4]) if config.family == "encoder-decoder" else (ids,)
    lens = logit_lens(model, *inputs)
    with torch.no_grad():
        logits = model(*inputs)
    layers = config.decoder_layers if config.family == "encoder-decoder" else config.n_layers
    assert lens.shape == (layers + 1, *logits.shape)
    torch.testing.assert_close(lens[-1], logits, atol=1e-6, rtol=0)
    assert not torch.allclose(lens[0], lens[-1])  # the layers change the prediction
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_the_first_reading_is_the_embedding_through_the_readout():
    torch.manual_seed(0)
    model = build_model(get_preset("tiny-lm").replace(vocab_size=32, max_len=32)).eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        expected = model.lm_head.proj(model.decoder.final_norm(model.embed(ids)))
    torch.testing.assert_close(logit_lens(model, ids)[0], expected, atol=1e-6, rtol=0)


def test_an_encoder_without_a_vocabulary_head_is_a_clear_error():
    model = build_model(get_preset("tiny-encoder").replace(vocab_size=32, head="classify", n_labels=2)).eval()
    with pytest.raises(UserError, match="the logit lens needs an output over the vocabulary"):
        logit_lens(model, torch.tensor([[5, 6]]))
