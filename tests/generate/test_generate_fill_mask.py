"""Fill-mask: the top-k tokens and probabilities at each mask, batched or alone."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.generate import fill_mask
from glassformer.models import build_model

MASK = 4


@pytest.fixture
def mlm():
    torch.manual_seed(0)
    return build_model(get_preset("tiny-encoder").replace(vocab_size=30, head="mlm")).eval()


def test_top_k_tokens_and_probabilities_at_each_mask(mlm):
    ids = [1, 7, MASK, 9, MASK, 2]
    [fills] = fill_mask(mlm, [ids], MASK, top_k=3)
    assert [f.position for f in fills] == [2, 4]
    with torch.no_grad():
        probs = torch.softmax(mlm(torch.tensor([ids])), dim=-1)[0]
    for fill in fills:
        expected = probs[fill.position].topk(3)
        assert fill.tokens == expected.indices.tolist()
        assert fill.probs == pytest.approx(expected.values.tolist(), abs=1e-6)
        assert fill.probs == sorted(fill.probs, reverse=True)


def test_padded_batch_equals_each_text_alone(mlm):
    texts = [[1, MASK, 2], [1, 5, 6, 7, MASK, 8, 2]]
    batch = fill_mask(mlm, texts, MASK, top_k=4)
    for ids, together in zip(texts, batch):
        [alone] = fill_mask(mlm, [ids], MASK, top_k=4)
        assert [f.tokens for f in together] == [f.tokens for f in alone]
        assert [f.probs for f in together][0] == pytest.approx([f.probs for f in alone][0], abs=1e-5)


def test_text_without_a_mask_is_a_user_error(mlm):
    with pytest.raises(UserError, match="no <mask>"):
        fill_mask(mlm, [[1, 5, 2]], MASK)


def test_model_without_an_mlm_head_is_a_user_error():
    model = build_model(get_preset("tiny-encoder").replace(vocab_size=30)).eval()
    with pytest.raises(UserError, match="masked-LM head"):
        fill_mask(model, [[1, MASK, 2]], MASK)
