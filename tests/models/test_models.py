"""Behaviour of the three families: shapes, masking, causality, learning, tying, dtypes."""

import pytest
import torch
import torch.nn.functional as F

from glassformer.config import get_preset
from glassformer.inspect import step_by_step
from glassformer.models import build_model
from glassformer.nn import HookPoint, padding_mask

V = 40


def _model(name, **changes):
    return build_model(get_preset(name).replace(vocab_size=V, dropout=0.0, **changes)).eval()


def test_article_a_shapes_on_a_5_by_12_batch():
    model = build_model(get_preset("article-a").replace(dropout=0.0)).eval()
    seen = {}
    attn = model.encoder.layers[0].self_attn
    for key, point in (("probs", attn.hook_probs), ("q", attn.hook_q), ("heads", attn.hook_q_heads)):
        point.register_forward_hook(lambda m, i, o, key=key: seen.update({key: o.shape}))
    ids = torch.randint(5, 10000, (5, 12))
    with torch.no_grad(), step_by_step(model):
        memory = model.encode(ids)
    assert memory.shape == (5, 12, 768)
    assert seen == {"q": (5, 12, 512), "heads": (5, 8, 12, 64), "probs": (5, 8, 12, 12)}


def test_padded_token_ids_do_not_change_real_positions():
    src = torch.tensor([[7, 8, 9, 0, 0], [6, 5, 0, 0, 0]])
    other = src.clone()
    other[src == 0] = 11  # same pad mask, different ids behind it
    mask = padding_mask(src, 0)
    real = src != 0

    encoder = _model("tiny-encoder")
    assert torch.equal(encoder.encode(src, mask)[real], encoder.encode(other, mask)[real])

    seq2seq = _model("tiny-seq2seq")
    tgt = torch.tensor([[1, 12, 13, 14], [1, 15, 16, 2]])
    assert torch.equal(seq2seq(src, tgt, src_mask=mask), seq2seq(other, tgt, src_mask=mask))

    lm = _model("tiny-lm")
    left = torch.tensor([[0, 0, 7, 8, 9], [0, 6, 5, 4, 3]])
    left_other = left.clone()
    left_other[left == 0] = 11
    positions = (torch.cumsum(left != 0, dim=1) - 1).clamp(min=0)
    lm_mask = padding_mask(left, 0)
    a, b = lm(left, lm_mask, positions), lm(left_other, lm_mask, positions)
    assert torch.equal(a[left != 0], b[left != 0])
    assert torch.isfinite(a).all()


def test_future_tokens_do_not_change_past_outputs():
    lm = _model("tiny-lm")
    ids = torch.randint(5, V, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = torch.randint(5, V, (2, 4))
    assert torch.equal(lm(ids)[:, :6], lm(changed)[:, :6])

    seq2seq = _model("tiny-seq2seq")
    src = torch.randint(5, V, (2, 8))
    assert torch.equal(seq2seq(src, ids)[:, :6], seq2seq(src, changed)[:, :6])


@pytest.mark.parametrize("name", ["tiny-seq2seq", "tiny-lm", "tiny-encoder"])
def test_fast_and_step_by_step_paths_agree(name):
    model = _model(name)
    ids = torch.randint(5, V, (2, 9))
    ids[1, 6:] = 0
    run = (lambda: model(ids, ids)) if name == "tiny-seq2seq" else (lambda: model(ids, padding_mask(ids, 0)))
    fast = run()
    with step_by_step(model):
        slow = run()
    assert (fast - slow).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["tiny-seq2seq", "tiny-lm", "tiny-encoder"])
def test_bf16_autocast_runs_on_cpu_and_agrees_with_fp32(name):
    model = _model(name)
    ids = torch.randint(5, V, (2, 9))
    run = (lambda: model(ids, ids)) if name == "tiny-seq2seq" else (lambda: model(ids))
    full = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = run()
        with step_by_step(model):
            half_slow = run()
    assert torch.isfinite(half).all()
    if name != "tiny-encoder":  # the encoder's output comes from a LayerNorm, which autocast runs in fp32
        assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max().item() < 0.1
    assert (half_slow.float() - half.float()).abs().max().item() < 0.1


def _overfit(model, step, steps=150):
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for i in range(steps):
        optimizer.zero_grad()
        loss = step()
        loss.backward()
        if i == 0:
            first = loss.item()
            no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert no_grad == []
        optimizer.step()
    return first, loss.item()


def test_each_family_overfits_one_batch():
    src = torch.randint(5, V, (4, 8))
    tgt = torch.randint(5, V, (4, 9))

    seq2seq = _model("tiny-seq2seq")
    first, last = _overfit(seq2seq, lambda: F.cross_entropy(seq2seq(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten()))
    assert first > 3.0 and last < 0.05

    lm = _model("tiny-lm")
    first, last = _overfit(lm, lambda: F.cross_entropy(lm(tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten()))
    assert first > 3.0 and last < 0.05

    mlm = _model("tiny-encoder", head="mlm")
    masked = src.clone()
    masked[:, ::3] = 4
    first, last = _overfit(mlm, lambda: F.cross_entropy(mlm(masked).flatten(0, 1), src.flatten()))
    assert first > 3.0 and last < 0.05

    labels = torch.tensor([0, 1, 2, 1])
    classifier = _model("tiny-encoder", head="classify", n_labels=3, pooler=True)
    first, last = _overfit(classifier, lambda: F.cross_entropy(classifier(src), labels))
    assert last < 0.05

    tags = torch.randint(0, 3, (4, 8))
    tagger = _model("tiny-encoder", head="tag", n_labels=3)
    first, last = _overfit(tagger, lambda: F.cross_entropy(tagger(src).flatten(0, 1), tags.flatten()))
    assert last < 0.05


def test_weight_tying_as_the_paper_and_gpt2_and_bert():
    seq2seq = _model("tiny-seq2seq")
    assert seq2seq.src_embed.token.weight is seq2seq.tgt_embed.token.weight is seq2seq.lm_head.proj.weight
    untied = _model("tiny-seq2seq", tie_embeddings=False, tie_output=False, tgt_vocab_size=30)
    assert untied.lm_head.proj.weight.shape == (30, 64)
    assert untied.src_embed.token.weight is not untied.tgt_embed.token.weight
    lm = _model("tiny-lm")
    assert lm.lm_head.proj.weight is lm.embed.token.weight
    mlm = _model("tiny-encoder", head="mlm")
    assert mlm.head.decoder.weight is mlm.embed.token.weight


def test_hook_points_are_declared_with_dims_everywhere():
    model = _model("tiny-seq2seq")
    points = {n: m for n, m in model.named_modules() if isinstance(m, HookPoint)}
    assert "decoder.layers.1.cross_attn.hook_probs" in points
    assert points["decoder.layers.1.cross_attn.hook_probs"].dims == ("B", "H", "T", "S")
    assert "lm_head.hook_logits" in points and "src_embed.hook_positions" in points


def test_sequence_longer_than_maximum_is_a_clear_error():
    from glassformer.errors import UserError

    lm = _model("tiny-lm", max_len=8)
    with pytest.raises(UserError, match="sequence of 9 tokens is longer than the model's maximum of 8"):
        lm(torch.randint(5, V, (1, 9)))


def test_last_only_projects_just_the_last_position():
    torch.manual_seed(0)
    model = build_model(get_preset("tiny-lm").replace(vocab_size=50)).eval()
    ids = torch.randint(1, 50, (2, 7))
    with torch.no_grad():
        full, last = model(ids), model(ids, last_only=True)
    assert last.shape == (2, 1, 50)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-6, rtol=0)
