import pytest

from glassformer.config import PRESETS, ModelConfig, get_preset
from glassformer.errors import ConfigError
from glassformer.models import build_model, count_parameters

PUBLISHED = {
    # The paper's Table 3 base and big models with a shared, tied 37,000 vocabulary, no output bias.
    "paper-base": 63_082_496,
    "paper-big": 214_245_376,
    # GPT-2 small: V 50257, 1024 learned positions, GELU, pre-norm, tied head.
    "gpt2-small": 124_439_808,
    # BERT-base with segment embeddings, embedding LayerNorm and pooler.
    "bert-base": 109_482_240,
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts_exactly(name):
    model = build_model(get_preset(name), init=False)
    assert count_parameters(model) == PUBLISHED[name]


def test_article_a_widths():
    config = get_preset("article-a")
    assert (config.d_model, config.attn_width, config.n_heads, config.d_head) == (768, 512, 8, 64)
    model = build_model(config, init=False)
    attn = model.encoder.layers[0].self_attn
    assert tuple(attn.w_q.weight.shape) == (512, 768)
    assert tuple(attn.w_o.weight.shape) == (768, 512)


def test_article_b_widths():
    config = get_preset("article-b")
    assert (config.d_model, config.n_heads, config.d_head) == (6, 2, 3)


def test_indivisible_attention_width_names_both_values():
    with pytest.raises(ConfigError, match=r"d_attn=10 is not divisible by n_heads=3"):
        ModelConfig(d_model=12, d_attn=10, n_heads=3)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(family="rnn"), "family='rnn' is not one of"),
        (dict(norm="middle"), "norm='middle' is not one of"),
        (dict(dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
        (dict(d_model=0), "d_model must be a positive integer, got 0"),
        (dict(tgt_vocab_size=7, vocab_size=9), "tie_embeddings needs one shared vocabulary"),
        (dict(family="encoder-only", head="classify"), "needs n_labels >= 1"),
        (dict(head="mlm"), "head='mlm' is not a head of the encoder-decoder family"),
        (dict(family="decoder-only", head="mlm"), "head='mlm' is not a head of the decoder-only family"),
        (dict(family="encoder-only", pooler=True, pooler_activation="gelu"), "pooler_activation='gelu' is not one of: tanh, relu"),
    ],
)
def test_invalid_configs_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**changes)


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name, tmp_path):
    config = get_preset(name)
    assert ModelConfig.from_json(config.to_json()) == config
    config.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == config


def test_unknown_field_and_preset_are_errors():
    with pytest.raises(ConfigError, match="unknown model config field"):
        ModelConfig.from_dict({"d_modle": 3})
    with pytest.raises(ConfigError, match="unknown preset 'gpt5'"):
        get_preset("gpt5")


def test_presets_are_copies():
    get_preset("tiny-lm").d_model = 1
    assert get_preset("tiny-lm").d_model == 64
