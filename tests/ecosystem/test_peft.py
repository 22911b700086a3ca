"""peft's LoRA works on glassformer models unchanged: plain `get_peft_model` on the model as built.

`peft.get_peft_model(model, LoraConfig(target_modules=[...]))` accepts the plain nn.Module (no
PreTrainedModel, no task type): it wraps the attention projections (nn.Linear modules w_q, w_k,
w_v, w_o under self_attn / cross_attn), freezes everything else, forwards `model(*args)` unchanged,
and `merge_and_unload()` folds the adapters back into plain weights. Measured on the seeded
batches below (peft 0.21.2, torch 2.13 CPU): 25 Adam steps at 1e-2 take the loss to 0.35-0.37 of
its first value (encoder-decoder, 4.6 to 1.6-1.7), to 0.0000 (encoder classifier) and to 0.83
(decoder LM, whose tied embeddings and output stay frozen); merged and unmerged outputs differ by
at most 3.2e-6.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

from glassformer.config import get_preset
from glassformer.models import build_model

V = 40
TARGETS = ("w_q", "w_k", "w_v", "w_o")
R, ALPHA = 4, 8
STEPS, LR = 25, 1e-2
MERGE_TOLERANCE = 1e-5  # fp32, max |merged - unmerged| over the outputs (measured <= 3.2e-6)

# preset -> (config changes, attention blocks, loss bar after STEPS as a fraction of the first loss)
FAMILIES = {
    "tiny-seq2seq": ({}, 2 + 2 + 2, 0.5),  # 2 encoder self + 2 decoder self + 2 cross; measured 0.35
    "tiny-encoder": ({"head": "classify", "n_labels": 2}, 2, 0.05),  # measured 0.0001
    "tiny-lm": ({}, 2, 0.9),  # tied, frozen embeddings and output: measured 0.83
}


def _model(name: str) -> nn.Module:
    changes = FAMILIES[name][0]
    torch.manual_seed(0)
    return build_model(get_preset(name).replace(vocab_size=V, max_len=32, dropout=0.0, **changes))


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, V, (8, 12), generator=g)  # no padding, no special tokens
    labels = torch.randint(0, 2, (8,), generator=g)
    return ids, labels


def _forward(model, name, batch):
    ids, _ = batch
    if name == "tiny-seq2seq":
        return model(ids, ids[:, :-1])  # [B, T, V]
    if name == "tiny-encoder":
        return model(ids)  # [B, n_labels]
    return model(ids[:, :-1])  # [B, T, V]


def _loss(name, logits, batch):
    ids, labels = batch
    if name == "tiny-encoder":
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


def _lora(model):
    config = LoraConfig(target_modules=list(TARGETS), r=R, lora_alpha=ALPHA, lora_dropout=0.0)
    return get_peft_model(model, config)


def _projection_names(model) -> list[str]:
    """w_q/w_k/w_v/w_o directly under a self_attn or cross_attn module."""
    names = []
    for name, _ in model.named_modules():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-1] in TARGETS and parts[-2] in ("self_attn", "cross_attn"):
            names.append(name)
    return names


@pytest.mark.parametrize("name", list(FAMILIES))
def test_lora_wraps_exactly_the_attention_projections_and_changes_nothing_untrained(name):
    model = _model(name).eval()
    batch = _batch()
    expected = _projection_names(model)
    assert len(expected) == len(TARGETS) * FAMILIES[name][1]  # 24, 8, 8
    with torch.no_grad():
        before = _forward(model, name, batch)

    wrapped_model = _lora(model).eval()
    base = wrapped_model.get_base_model()
    wrapped = {n: m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
    assert sorted(wrapped) == sorted(expected)
    assert all(isinstance(m.base_layer, nn.Linear) for m in wrapped.values())

    trainable = {n: p for n, p in base.named_parameters() if p.requires_grad}
    assert sorted(trainable) == sorted(f"{n}.lora_{ab}.default.weight" for n in expected for ab in "AB")
    n_lora = sum(R * (m.base_layer.in_features + m.base_layer.out_features) for m in wrapped.values())
    assert sum(p.numel() for p in trainable.values()) == n_lora == wrapped_model.get_nb_trainable_parameters()[0]

    with torch.no_grad():  # B starts at zero: the wrapped model computes exactly what the model did
        assert torch.equal(_forward(wrapped_model, name, batch), before)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_lora_fine_tuning_learns_leaves_the_base_untouched_and_merges(name):
    model = _model(name)
    batch = _batch()
    original = {n: p.detach().clone() for n, p in model.named_parameters()}

    wrapped_model = _lora(model)
    base = wrapped_model.get_base_model()
    optimizer = torch.optim.Adam([p for p in wrapped_model.parameters() if p.requires_grad], lr=LR)
    wrapped_model.train()
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(name, _forward(wrapped_model, name, batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    wrapped_model.eval()
    with torch.no_grad():
        unmerged = _forward(wrapped_model, name, batch)
    final = _loss(name, unmerged, batch).item()
    assert final <= FAMILIES[name][2] * losses[0], (losses[0], final)

    # Every weight that is not LoRA's is bit-identical; every LoRA B moved off its zero start.
    after = {n.replace(".base_layer.", "."): p for n, p in base.named_parameters() if "lora_" not in n}
    assert sorted(after) == sorted(original)
    assert all(torch.equal(after[n], original[n]) for n in original)
    lora = {n: m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
    b_weights = [m.lora_B["default"].weight for m in lora.values()]
    assert len(b_weights) == len(TARGETS) * FAMILIES[name][1]
    assert all(b.abs().max().item() > 0 for b in b_weights)
    deltas = {n: (ALPHA / R) * (m.lora_B["default"].weight @ m.lora_A["default"].weight).detach()
              for n, m in lora.items()}

    merged_model = wrapped_model.merge_and_unload()
    assert not any(isinstance(m, LoraLayer) for m in merged_model.modules())
    merged_weights = dict(merged_model.named_parameters())
    assert sorted(merged_weights) == sorted(original)
    for n, delta in deltas.items():  # merged weight = W + (alpha / r) B A
        torch.testing.assert_close(merged_weights[n + ".weight"], original[n + ".weight"] + delta,
                                   rtol=0, atol=1e-6)
    with torch.no_grad():
        merged = _forward(merged_model, name, batch)
    assert (merged - unmerged).abs().max().item() <= MERGE_TOLERANCE
