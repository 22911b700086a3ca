"""Our stacks with copied weights equal PyTorch's own Transformer modules (dropout off, fp32)."""

import pytest
import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.interop.torch_nn import load_torch_transformer
from glassformer.models import build_model
from glassformer.nn import padding_mask

D, H, FF, V = 32, 4, 64, 23


def _config(family, norm_first):
    return ModelConfig(
        family=family, vocab_size=V, d_model=D, n_heads=H, d_ff=FF, n_layers=2, max_len=32,
        norm="pre" if norm_first else "post", final_norm=True, dropout=0.0,
    )


def _ids(lengths, total):
    ids = torch.randint(5, V, (len(lengths), total))
    for row, n in enumerate(lengths):
        ids[row, n:] = 0
    return ids


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_decoder_matches_torch_transformer(norm_first):
    reference = nn.Transformer(
        D, H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
        batch_first=True, norm_first=norm_first,
    )
    reference.train()  # dropout is 0; train mode keeps torch off its nested-tensor fast path
    ours = build_model(_config("encoder-decoder", norm_first))
    untouched = load_torch_transformer(ours, reference.state_dict())
    assert set(untouched) == {"src_embed.token.weight"}  # tied: target embedding and output share it

    src, tgt = _ids([9, 6, 3], 9), _ids([7, 7, 4], 7)
    src_mask, tgt_mask = padding_mask(src, 0), padding_mask(tgt, 0)
    logits = ours(src, tgt, src_mask=src_mask, tgt_mask=tgt_mask)
    expected_hidden = reference(
        ours.src_embed(src), ours.tgt_embed(tgt),
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.bool),
        src_key_padding_mask=src == 0, tgt_key_padding_mask=tgt == 0, memory_key_padding_mask=src == 0,
    )
    expected = ours.lm_head(expected_hidden)
    assert (logits - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_only_matches_torch_transformer_encoder(norm_first):
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first)
    reference = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(D), enable_nested_tensor=False).eval()
    ours = build_model(_config("encoder-only", norm_first)).eval()
    load_torch_transformer(ours, {f"encoder.{k}": v for k, v in reference.state_dict().items()})
    ids = _ids([8, 5], 8)
    expected = reference(ours.embed(ids), src_key_padding_mask=ids == 0)
    hidden = ours.encode(ids)
    real = ids != 0
    assert (hidden[real] - expected[real]).abs().max().item() <= 1e-5
