import math

import torch

from glassformer.config import ModelConfig
from glassformer.nn import Embeddings, sinusoidal_table


def test_position_zero_is_zero_one_alternating():
    assert sinusoidal_table(4, 6)[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_sinusoid_follows_the_paper_formula_including_odd_width():
    for d in (6, 7, 512):
        table = sinusoidal_table(50, d)
        for pos in (1, 17, 49):
            for j in range(d):
                i2 = j - j % 2
                angle = pos / 10000 ** (i2 / d)
                expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
                assert abs(table[pos, j].item() - expected) < 1e-6


def test_embedding_is_scaled_by_sqrt_d_model_plus_positions():
    config = ModelConfig(d_model=6, n_heads=2, vocab_size=10, dropout=0.0)
    embed = Embeddings(config, 10).eval()
    ids = torch.tensor([[3, 4, 5]])
    expected = embed.token.weight[ids] * math.sqrt(6) + sinusoidal_table(3, 6)[None]
    torch.testing.assert_close(embed(ids), expected)
    torch.testing.assert_close(embed(ids[:, 1:], offset=1), expected[:, 1:])


def test_learned_positions_segments_and_norm():
    config = ModelConfig(
        family="encoder-only", d_model=8, n_heads=2, vocab_size=10, positions="learned", n_segments=2,
        embedding_norm=True, scale_embeddings=False, dropout=0.0,
    )
    embed = Embeddings(config, 10).eval()
    ids, segments = torch.tensor([[1, 2]]), torch.tensor([[0, 1]])
    total = embed.token.weight[ids] + embed.position.weight[:2][None] + embed.segment.weight[segments]
    torch.testing.assert_close(embed(ids, segments=segments), embed.norm(total))
