"""`glassformer explain`: the printout is the recorder's tensors, and each printed step follows
from the previously printed ones by the formula it names (recomputed here with NumPy)."""

import io
import math
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

from glassformer.cli import main
from glassformer.inspect.explain import explain
from glassformer.inspect.toy import DEFAULT_CORPUS, corpus_vocabulary, read_corpus, toy_config, toy_model

HALF = 0.5e-4  # the largest rounding error of a number printed with 4 decimals
TRAIN_STEPS = "200"  # passes for every seed tried (0-4) at lr 0.02; about 1-2 s


def _run(*args):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["explain", *args]) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def untrained():
    return _run()


@pytest.fixture(scope="module")
def trained():
    return _run("--train", TRAIN_STEPS)


def parse(text):
    """{key: (row labels, column labels, values, source)} of every printed block."""
    blocks, lines, i = {}, text.splitlines(), 0
    while i < len(lines):
        match = re.match(r"^▸ (\S+)  .*?(?:← (.+))?$", lines[i])
        if not match:
            i += 1
            continue
        cols, rows, values, j = lines[i + 1].split(), [], [], i + 2
        while j < len(lines) and lines[j].strip():
            label, *numbers = lines[j].split()
            rows.append(label)
            values.append([float(x) for x in numbers])
            j += 1
        assert all(len(v) == len(cols) for v in values), lines[i]
        blocks[match.group(1)] = (rows, cols, np.array(values), match.group(2))
        i = j
    return blocks


def close(actual, expected, tol, what):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape, what
    inf = np.isinf(expected)
    assert np.array_equal(np.isinf(actual), inf) and np.array_equal(actual[inf], expected[inf]), f"{what}: -inf differ"
    gap = np.abs(actual[~inf] - expected[~inf])
    bound = np.broadcast_to(tol, expected.shape)[~inf]
    assert (gap <= bound).all(), f"{what}: off by {gap.max():.2e}, allowed {bound[np.argmax(gap - bound)]:.2e}"


def linear_tol(x, w):
    """How far x W + b can be from the printed result when x, W, b are printed rounded."""
    return HALF * (np.abs(x).sum(1)[:, None] + np.abs(w).sum(0)[None, :] + 2) * 1.01 + 1e-6


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Checker:
    """Recomputes each printed step from the printed steps before it."""

    def __init__(self, text):
        self.text = text
        self.b = parse(text)
        self.E = self.b["E"][2]
        self.vocab = self.b["E"][0]
        self.d = self.E.shape[1]

    def v(self, key):
        return self.b[key][2]

    def linear(self, x, key, w_key, b_key):
        w, b = self.v(w_key), self.v(b_key)
        close(self.v(key), x @ w + b, linear_tol(x, w), key)

    def embedding(self, p):
        ids = self.v(f"{p}.ids")[0].astype(int)
        emb = self.v(f"{p}.embedding")
        close(emb, self.E[ids] * math.sqrt(self.d), HALF * math.sqrt(self.d) * 1.01 + HALF, f"{p}.embedding")
        pe = self.v(f"{p}.positions")
        pos, two_i = np.arange(len(ids))[:, None], np.arange(0, self.d, 2)[None, :]
        table = np.zeros((len(ids), self.d))
        table[:, 0::2], table[:, 1::2] = np.sin(pos / 10000 ** (two_i / self.d)), np.cos(pos / 10000 ** (two_i / self.d))
        close(pe, table, HALF + 1e-6, f"{p}.positions")
        assert pe[0].tolist() == [0.0, 1.0] * (self.d // 2)  # article C: PE of position 0
        close(self.v(f"{p}.x"), emb + pe, 2 * HALF + 1e-6, f"{p}.x")
        return self.v(f"{p}.x")

    def attention(self, p, xq, xkv, causal):
        for n, x in (("Q", xq), ("K", xkv), ("V", xkv)):
            self.linear(x, f"{p}.{n}", f"{p}.W{n.lower()}", f"{p}.b{n.lower()}")
        q, k, v = self.v(f"{p}.Q"), self.v(f"{p}.K"), self.v(f"{p}.V")
        heads = sorted({int(m) for m in re.findall(rf"^{re.escape(p)}\.h(\d+)\.", "\n".join(self.b), re.M)})
        d_head = q.shape[1] // len(heads)
        contexts = []
        for h in heads:
            hk, cols = f"{p}.h{h}", slice(h * d_head, (h + 1) * d_head)
            qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]
            close(self.v(f"{hk}.scores"), qh @ kh.T, linear_tol(qh, kh.T), f"{hk}.scores")
            scaled = self.v(f"{hk}.scaled")
            close(scaled, self.v(f"{hk}.scores") / math.sqrt(d_head), HALF / math.sqrt(d_head) + HALF + 1e-6, f"{hk}.scaled")
            masked = scaled.copy()
            if causal:
                masked[np.triu(np.ones_like(masked, dtype=bool), 1)] = -np.inf
            close(self.v(f"{hk}.masked"), masked, 2 * HALF + 1e-6, f"{hk}.masked")
            probs = self.v(f"{hk}.softmax")
            close(probs, softmax(self.v(f"{hk}.masked")), 2 * HALF + 1e-6, f"{hk}.softmax")
            close(self.v(f"{hk}.context"), probs @ vh, linear_tol(probs, vh), f"{hk}.context")
            contexts.append(self.v(f"{hk}.context"))
        close(self.v(f"{p}.concat"), np.concatenate(contexts, axis=1), 2 * HALF + 1e-6, f"{p}.concat")
        self.linear(self.v(f"{p}.concat"), f"{p}.out", f"{p}.Wo", f"{p}.bo")
        return self.v(f"{p}.out")

    def add_norm(self, p, x, y):
        total = self.v(f"{p}.sum")
        close(total, x + y, 2 * HALF + 1e-6, f"{p}.sum")
        mean, var = total.mean(1, keepdims=True), total.var(1, keepdims=True)
        norm = (total - mean) / np.sqrt(var + 1e-5) * self.v(f"{p}.gamma") + self.v(f"{p}.beta")
        std = np.sqrt(var)
        tol = HALF * (1 + 2 * np.abs(self.v(f"{p}.gamma")) / std + np.abs(norm)) * 1.5 + HALF
        close(self.v(f"{p}.norm"), norm, tol, f"{p}.norm")
        return self.v(f"{p}.norm")

    def feedforward(self, p, x):
        w1, b1 = self.v(f"{p}.W1"), self.v(f"{p}.b1")
        close(self.v(f"{p}.hidden"), np.maximum(x @ w1 + b1, 0), linear_tol(x, w1), f"{p}.hidden")
        self.linear(self.v(f"{p}.hidden"), f"{p}.out", f"{p}.W2", f"{p}.b2")
        return self.v(f"{p}.out")

    def layer(self, p, x, memory=None):
        """One post-norm layer; p is "enc.l0" or "decK.l0"."""
        encoder = memory is None
        a = f"{p}.attn" if encoder else f"{p}.self"
        x = self.add_norm(f"{p}.an1", x, self.attention(a, x, x, causal=not encoder))
        if not encoder:
            x = self.add_norm(f"{p}.an2", x, self.attention(f"{p}.cross", x, memory, causal=False))
        last = f"{p}.an2" if encoder else f"{p}.an3"
        return self.add_norm(last, x, self.feedforward(f"{p}.ffn", x))

    def check_all(self):
        memory = self.layer("enc.l0", self.embedding("enc"))
        close(self.v("enc.out"), memory, 1e-9, "enc.out")
        chosen_lines = re.findall(r"^→ step (\d+) chooses '(.+?)' \(id (\d+), probability ([\d.]+)\)", self.text, re.M)
        assert chosen_lines, "no decoding steps printed"
        detailed = 0
        prefix = ["<start>"]
        for k, word, wid, prob in chosen_lines:
            k = int(k)
            if f"dec{k}.ids" in self.b:
                detailed += 1
                assert self.b[f"dec{k}.ids"][1] == prefix
                out = self.layer(f"dec{k}.l0", self.embedding(f"dec{k}"), memory)
                close(self.v(f"dec{k}.last"), out[-1:], 1e-9, f"dec{k}.last")
            last = self.v(f"dec{k}.last")[0]
            rows, _, table, _ = self.b[f"dec{k}.logits"]
            assert sorted(rows) == sorted(self.vocab)  # the whole vocabulary is printed
            order = [self.vocab.index(r) for r in rows]
            expected = self.E[order] @ last  # tied output layer: logits = h Eᵀ
            close(table[:, 0], expected, HALF * (np.abs(self.E[order]).sum(1) + np.abs(last).sum()) * 1.01 + HALF, f"dec{k}.logits")
            probs = softmax(table[:, 0])
            close(table[:, 1], probs, 2 * HALF + 1e-6, f"dec{k}.probability")
            assert rows[0] == word and int(wid) == self.vocab.index(word) and float(prob) == table[0, 1]
            prefix = prefix + [word]
        assert detailed >= 1
        return [w for _, w, _, _ in chosen_lines]


def test_untrained_printout_follows_step_by_step(untrained):
    assert "PE(pos, 2i) = sin(pos / 10000^(2i/6))" in untrained
    words = Checker(untrained).check_all()
    assert len(words) >= 1


def test_trained_toy_translates_and_its_printout_follows_step_by_step(trained):
    assert "translation: you win or you die" in trained
    words = Checker(trained).check_all()
    assert words == ["you", "win", "or", "you", "die", "<end>"]


def test_printed_numbers_are_the_recorders_tensors(untrained):
    """Run the same default toy through the library and compare every printed activation to the Recording."""
    tokenizer = corpus_vocabulary(DEFAULT_CORPUS)
    model = toy_model(toy_config(tokenizer.vocab_size), seed=0)
    walk = explain(model, tokenizer, DEFAULT_CORPUS[0][0])
    rec = walk.recording
    printed = parse(untrained)
    compared = 0
    for key, (_, _, values, source) in printed.items():
        if not source or source.endswith((".weight", ".bias")):
            continue
        step = int(re.match(r"dec(\d+)\.", key).group(1)) if key.startswith("dec") else 0
        if source.startswith("lm_head.hook_logits"):
            ids = [tokenizer.token_to_id(t) for t in printed[key][0]]
            expected = np.stack([rec.value("lm_head.hook_logits", step)[0, -1, ids].numpy(), rec.value("lm_head.hook_probs", step)[0, -1, ids].numpy()], 1)
        else:
            tensor = rec.value(source, step)[0]
            head = re.search(r"\.h(\d+)\.", key)
            tensor = tensor[int(head.group(1))] if head else tensor
            expected = tensor[-1:].numpy() if key.endswith(".last") else tensor.numpy()
        close(values, expected, HALF + 1e-6, key)
        compared += 1
    assert compared > 60
    # Weights are the model's parameters.
    close(printed["enc.l0.attn.Wq"][2], model.encoder.layers[0].self_attn.w_q.weight.T.detach().numpy(), HALF + 1e-7, "Wq")


def test_options_and_corpus_file(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("# pairs\nhello there\tbonjour\n\ngood night\tbonne nuit\n", encoding="utf-8")
    assert read_corpus(corpus) == [("hello there", "bonjour"), ("good night", "bonne nuit")]
    text = _run("--corpus", str(corpus), "--d-model", "8", "--heads", "4", "--max-steps", "2", "--detail", "none", "--top", "3")
    blocks = parse(text)
    assert "input: hello there" in text
    assert blocks["enc.l0.attn.Wq"][2].shape == (8, 8)
    assert {k.split(".")[3] for k in blocks if k.startswith("enc.l0.attn.h")} == {"h0", "h1", "h2", "h3"}
    assert blocks["dec0.logits"][2].shape == (3, 2) and "dec0.ids" not in blocks
    plain = tmp_path / "plain.txt"
    plain.write_text("one sentence only\n", encoding="utf-8")
    assert read_corpus(plain) == [("one sentence only", "one sentence only")]


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["explain", "--corpus", str(tmp_path / "missing.tsv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["explain", "--d-model", "7", "--heads", "2"]) == 2
    assert "not divisible" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tc\n", encoding="utf-8")
    assert main(["explain", "--corpus", str(bad)]) == 2
    assert "line 1" in capsys.readouterr().err
