import json
import re

import pytest
import torch

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.inspect.trace import named_shape, run_trace, select_layers
from glassformer.models import build_model

# Article A's table (seeds.md), each row with the step name our table gives it.
ARTICLE_A = [
    ("token ids, a batch of 5 sentences, 12 tokens each", "token ids", [5, 12]),
    ("embedding lookup (embedding_dim 768)", "embedding", [5, 12, 768]),
    ("+ positional encoding (shape unchanged)", "+ positional encoding", [5, 12, 768]),
    ("Wq, Wk, Wv, each [embedding_dim, d_model]", "Wq, Wk, Wv", [768, 512]),
    ("Q, K, V", "Q, K, V", [5, 12, 512]),
    ("split into 8 heads of d_model/8 = 64", "split into heads", [5, 12, 8, 64]),
    ("swap seq and head dims, one slice per head", "transpose", [5, 8, 12, 64]),
    ("per head softmax(Q K^T / sqrt(d_k)) V, scores per head", "scores", [5, 8, 12, 12]),
    ("concat heads", "concat heads", [5, 12, 512]),
    ("output linear back to the embedding width", "output linear", [5, 12, 768]),
    ("residual (embedding + attention) then LayerNorm (x - mean) / std", "residual + LayerNorm", [5, 12, 768]),
]

_ROW = re.compile(r"^(\d+)\s{2,}(.+?)\s{2,}(\[[^\]]*\])\s{2,}")


def _parse_table(text):
    """(step, shape list) of each numbered row of the printed table."""
    rows = []
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            shape = [int(p.split("=")[1]) for p in match.group(3).strip("[]").split(", ")]
            rows.append((match.group(2).strip(), shape))
    return rows


@pytest.fixture(scope="module")
def article_a_output():
    """`glassformer trace --preset article-a --batch 5 --seq 12`, run once (the model is big)."""
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["trace", "--preset", "article-a", "--batch", "5", "--seq", "12"]) == 0
    text = out.getvalue()
    with redirect_stdout(out := io.StringIO()):
        assert main(["trace", "--preset", "article-a", "--batch", "5", "--seq", "12", "--src-seq", "20", "--json"]) == 0
    return text, json.loads(out.getvalue())


def test_article_a_table_row_for_row(article_a_output):
    text, _ = article_a_output
    rows = _parse_table(text)
    # The article's rows are the first eleven of ours that are not extra detail (positional
    # table, scaled/masked/softmax/weighted values), in the same order with the same shapes.
    extra = {"positional encoding", "scaled", "masked", "softmax", "weighted values"}
    ours = [r for r in rows if r[0] not in extra][: len(ARTICLE_A)]
    assert ours == [(step, shape) for _, step, shape in ARTICLE_A]
    # And everything between the first and the last of them belongs to encoder layer 0.
    assert rows[0] == ("token ids", [5, 12]) and rows[1] == ("embedding", [5, 12, 768])
    assert "[B=5, S=12, d_model=768]" in text and "[B=5, H=8, S=12, D=64]" in text


def test_article_a_rest_of_the_model_with_t_different_from_s(article_a_output):
    _, document = article_a_output
    rows = document["rows"]
    named = [(r["step"], r["named_shape"], r["where"]) for r in rows]
    cross = [n for n in named if ".cross_attn." in n[2]]
    assert ("scores", "[B=5, H=8, T=12, S=20]", "decoder.layers.0.cross_attn.hook_scores") in cross
    assert ("softmax", "[B=5, H=8, T=12, S=20]", "decoder.layers.0.cross_attn.hook_probs") in cross
    assert ("K, V", "[B=5, S=20, A=512]", "decoder.layers.0.cross_attn.hook_k|hook_v") in cross
    assert ("scores", "[B=5, H=8, T=12, T=12]", "decoder.layers.0.self_attn.hook_scores") in named
    assert ("scores", "[B=5, H=8, S=20, S=20]", "encoder.layers.0.self_attn.hook_scores") in named
    assert named[-2:] == [
        ("logits", "[B=5, T=12, V=10000]", "lm_head.hook_logits"),
        ("probabilities", "[B=5, T=12, V=10000]", "lm_head.hook_probs"),
    ]
    folded = [r for r in rows if r["step"] == "× 5 more layers"]
    assert [r["where"] for r in folded] == ["encoder.layers.1-5", "decoder.layers.1-5"]
    assert document["family"] == "encoder-decoder"


def _tiny(preset):
    torch.manual_seed(0)
    return build_model(get_preset(preset).replace(vocab_size=50)).eval()


@pytest.mark.parametrize(
    "preset, last_steps",
    [
        ("tiny-lm", ["decoder output", "logits", "probabilities"]),
        ("tiny-encoder", ["encoder output", "model output"]),
    ],
)
def test_other_families_trace_in_model_order(preset, last_steps):
    model = _tiny(preset)
    rows = run_trace(model, torch.randint(5, 50, (3, 6)))
    steps = [r.step for r in rows]
    assert steps[:4] == ["token ids", "embedding", "positional encoding", "+ positional encoding"]
    assert steps[-len(last_steps):] == last_steps
    # Pre-norm: LayerNorm comes before each sublayer and the add after it.
    layer0 = [r.step for r in rows if r.layer.endswith("layers.0")]
    assert layer0[0] == "LayerNorm" and layer0[layer0.index("output linear") + 1] == "residual add"
    assert not any("S" in r.dims for r in rows)  # one stream: every sequence dimension is T
    assert "[B=3, H=4, T=6, T=6]" in [named_shape(r.shape, r.dims) for r in rows]


def test_layers_filter_keeps_some_layers_and_folds_the_rest():
    model = _tiny("tiny-seq2seq")
    rows = run_trace(model, torch.randint(5, 50, (1, 4)), torch.randint(5, 50, (1, 3)))
    assert {r.layer for r in rows if r.layer} == {"encoder.layers.0", "encoder.layers.1", "decoder.layers.0", "decoder.layers.1"}
    only_1 = select_layers(rows, [1])
    assert {r.layer for r in only_1 if r.layer} == {"encoder.layers.1", "decoder.layers.1"}
    assert [r.where for r in only_1 if r.step == "× 1 more layer"] == ["encoder.layers.0", "decoder.layers.0"]
    assert select_layers(rows, [0, 1]) == rows


def test_trace_of_a_text_and_user_errors(capsys):
    assert main(["trace", "--preset", "tiny-seq2seq", "the cat sat", "--target", "le chat", "--layers", "all"]) == 0
    out = capsys.readouterr().out
    assert "[B=1, S=4]" in out and "[B=1, T=3]" in out  # the cat sat <end> / <start> le chat
    assert "decoder.layers.1" in out
    assert main(["trace", "--preset", "tiny-lm", "--src-seq", "5"]) == 2
    assert "--src-seq is for encoder-decoder" in capsys.readouterr().err
    assert main(["trace", "--preset", "tiny-lm", "--seq", "999"]) == 2
    assert "maximum length" in capsys.readouterr().err
    assert main(["trace"]) == 2
    assert "either --preset" in capsys.readouterr().err
