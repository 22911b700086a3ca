import numpy as np
import pytest
import torch

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.inspect.attention_data import collect_attention
from glassformer.inspect.attention_map import SHADES, shade, shade_grid
from glassformer.inspect.bertviz import bertviz_data, load_bertviz, save_bertviz
from glassformer.inspect.subject import from_preset, from_run
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer

TEXT = "when you play the game of thrones"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tokenizer = WordTokenizer.train([TEXT, "you win or you die"])
    config = get_preset("tiny-seq2seq").replace(vocab_size=tokenizer.vocab_size, max_len=32)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("runs") / "seq2seq"
    save_run(path, build_model(config).eval(), config, "seq2seq", tokenizer)
    return path


def test_shade_grid_puts_tokens_on_both_axes_and_shades_by_probability():
    weights = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.1, 0.3, 0.6]])
    grid = shade_grid(weights, ["a", "bb", "ccc"], ["x", "yy", "zzz"]).splitlines()
    # Column labels run top-down, one letter per line, above their column.
    assert [line.split("│")[1] for line in grid[:3]] == ["x y z", "  y z", "    z"]
    body = {line.split("│")[0].strip(): line.split("│")[1] for line in grid[4:]}
    assert body["a"] == "██" + "  " * 2
    assert body["bb"] == "▒▒▒▒  "
    assert body["ccc"] == "  ░░▒▒"  # 0.1, 0.3, 0.6 round to 0, 0.25, 0.5
    assert shade(0.0) == SHADES[0] and shade(1.0) == SHADES[-1] and shade(0.49) == "▒"
    colored = shade_grid(weights, ["a", "bb", "ccc"], ["x", "yy", "zzz"], color=True)
    assert "\x1b[48;5;255m" in colored and "\x1b[48;5;232m" in colored
    with pytest.raises(ValueError, match="do not match"):
        shade_grid(weights, ["a"], ["x"])


def test_attention_command_draws_the_recorded_map(run_dir, capsys):
    assert main(["attention", "--model", str(run_dir), TEXT, "--kind", "cross", "--layer", "1", "--head", "2", "--values", "--max-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "cross-attention (decoder → encoder) · layer 1 · head 2" in out
    attention = collect_attention(from_run(str(run_dir)), TEXT, max_steps=4)
    weights = attention.get("cross", 1)[2]
    rows, cols = attention.axes("cross")
    assert cols == ["when", "you", "play", "the", "game", "of", "thrones", "<end>"]
    assert rows[0] == "<start>" and len(rows) == weights.shape[0]
    assert shade_grid(weights, rows, cols) in out
    # The --values table repeats the same probabilities to 2 decimals.
    table = [line.split() for line in out.splitlines() if line.strip().startswith(rows[0]) and "." in line]
    assert np.allclose([float(x) for x in table[0][1:]], weights[0], atol=0.005 + 1e-9)


def test_attention_kinds_layers_and_heads_are_checked(run_dir, capsys):
    assert main(["attention", "--model", str(run_dir), TEXT, "--kind", "self", "--layer", "5"]) == 2
    assert "--layer 5 is out of range" in capsys.readouterr().err
    assert main(["attention", "--model", str(run_dir), TEXT, "--head", "9"]) == 2
    assert "--head 9 is out of range" in capsys.readouterr().err
    assert main(["attention", "--preset", "tiny-encoder", TEXT, "--kind", "cross"]) == 2
    assert "no 'cross' attention" in capsys.readouterr().err
    assert main(["attention", "--preset", "tiny-lm", "hello world", "--max-steps", "2", "--head", "0"]) == 0
    out = capsys.readouterr().out
    assert "decoder masked self-attention · layer 0 · head 0" in out


def test_decoder_maps_are_causal_and_rows_sum_to_one(run_dir):
    attention = collect_attention(from_run(str(run_dir)), TEXT, max_steps=5)
    assert attention.kinds() == ["self", "decoder", "cross"]
    decoder = attention.get("decoder", 0)
    assert np.allclose(np.triu(decoder, 1), 0) and np.allclose(decoder.sum(-1), 1)
    assert attention.get("self", 1).shape == (4, 8, 8)
    assert len(attention.target_tokens) == len(attention.steps[-1].prefix)


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_bertviz_export_round_trips(run_dir, tmp_path, suffix):
    attention = collect_attention(from_run(str(run_dir)), TEXT, max_steps=3)
    data = bertviz_data(attention)
    path = save_bertviz(data, tmp_path / f"attention{suffix}")
    back = load_bertviz(path)
    assert set(back) == {"encoder_attention", "decoder_attention", "cross_attention", "encoder_tokens", "decoder_tokens"}
    assert back["encoder_tokens"] == attention.source_tokens and back["decoder_tokens"] == attention.target_tokens
    s, t = len(attention.source_tokens), len(attention.target_tokens)
    assert [tuple(x.shape) for x in back["encoder_attention"]] == [(1, 4, s, s)] * 2
    assert [tuple(x.shape) for x in back["decoder_attention"]] == [(1, 4, t, t)] * 2
    assert [tuple(x.shape) for x in back["cross_attention"]] == [(1, 4, t, s)] * 2
    for key in ("encoder_attention", "decoder_attention", "cross_attention"):
        for ours, theirs in zip(data[key], back[key]):
            assert torch.equal(ours, theirs)


def test_bertviz_export_of_one_stream_models(tmp_path, capsys):
    path = tmp_path / "lm.json"
    assert main(["attention", "--preset", "tiny-lm", "a b c", "--max-steps", "2", "--export", str(path)]) == 0
    back = load_bertviz(path)
    assert set(back) == {"attention", "tokens"} and len(back["attention"]) == 2
    assert back["attention"][0].shape == (1, 4, len(back["tokens"]), len(back["tokens"]))
    encoder = collect_attention(from_preset("tiny-encoder", "a b c"), "a b c")
    assert set(bertviz_data(encoder)) == {"attention", "tokens"}
    assert main(["attention", "--preset", "tiny-lm", "a b", "--export", str(tmp_path / "x.txt")]) == 2
    assert ".safetensors or .json" in capsys.readouterr().err
