"""torch.compile works on glassformer models unchanged: one graph per model, the same numbers as eager.

Two backends: "aot_eager" runs the whole torch.compile front end (Dynamo tracing into one graph,
AOTAutograd) but executes the traced ops, so it is fast; "inductor" also generates and compiles
C++ kernels (it needs a C++ compiler). Measured per test, cold compile cache, one thread, a busy
2-core machine: aot_eager 1.3-5.8 s; inductor at one layer 15-27 s for the encoder (the first
inductor compile of a process, with its one-off start-up), 8.5-14 s decoder-only, 18-20 s
encoder-decoder, 23-29 s for the encoder's training step (forward and backward graphs). So the
default run compiles every family with aot_eager and the encoder with inductor (about 50 s in
all); the other inductor compiles are marked long and run with GLASSFORMER_LONG_TESTS=1 (the whole
file then: 87-107 s).

Differences measured against eager: at most 1.4e-6 (inductor forward), 0 (aot_eager), 1.0e-6
(inductor gradients, largest gradient 3.1).
"""

import os
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from glassformer.config import get_preset
from glassformer.models import build_model

V = 40
FORWARD_TOLERANCE = 1e-5  # fp32, max |compiled - eager| over the outputs
GRAD_TOLERANCE = dict(rtol=1e-5, atol=1e-5)  # fp32, per gradient element

FAMILIES = {
    "tiny-seq2seq": {},
    "tiny-encoder": {"head": "classify", "n_labels": 2},
    "tiny-lm": {},
}

needs_cxx = pytest.mark.skipif(  # the compiler inductor calls by default
    shutil.which(os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")) is None,
    reason="inductor on CPU needs a C++ compiler",
)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Compiled code is cached per forward() code object, so every test starts from nothing: no
    # guard left by another test's model, no recompile limit reached (which would fall back to eager).
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model(name: str, n_layers: int | None = None) -> nn.Module:
    torch.manual_seed(0)
    layers = {} if n_layers is None else {"n_layers": n_layers}
    config = get_preset(name).replace(vocab_size=V, max_len=32, dropout=0.0, **FAMILIES[name], **layers)
    return build_model(config)


def _inputs(name: str) -> tuple[torch.Tensor, ...]:
    ids = torch.randint(4, V, (2, 10), generator=torch.Generator().manual_seed(1))
    return (ids, ids[:, :-1]) if name == "tiny-seq2seq" else (ids,)


def _compiled_forward_matches_eager(name: str, backend: str, n_layers: int | None = None) -> None:
    model = _model(name, n_layers).eval()
    inputs = _inputs(name)
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(model, backend=counter, dynamic=False)
    with torch.no_grad():
        eager = model(*inputs)
        first = compiled(*inputs)
        again = compiled(*inputs)
    assert counter.frame_count == 1  # one graph for the whole forward: no graph break, no recompile
    assert first.shape == eager.shape == again.shape
    assert (first - eager).abs().max().item() <= FORWARD_TOLERANCE
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_compiled_forward_matches_eager_aot_eager(name):
    _compiled_forward_matches_eager(name, "aot_eager")


@needs_cxx
@pytest.mark.parametrize(
    "name",
    [
        "tiny-encoder",  # the quickest to compile: the default run's inductor check
        pytest.param("tiny-lm", marks=pytest.mark.long),
        pytest.param("tiny-seq2seq", marks=pytest.mark.long),
    ],
)
def test_compiled_forward_matches_eager_inductor(name):
    _compiled_forward_matches_eager(name, "inductor", n_layers=1)  # one layer: half the kernels to compile


def _loss_and_grads(model: nn.Module, forward, name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    inputs = _inputs(name)
    logits = forward(*inputs)
    if name == "tiny-encoder":
        loss = F.cross_entropy(logits, torch.tensor([0, 1]))
    else:  # next-token targets: the decoder input is ids[:, :-1] (seq2seq) or ids (LM, last step unscored)
        target = inputs[0][:, 1:]
        logits = logits if name == "tiny-seq2seq" else logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, V), target.reshape(-1))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _compiled_gradients_match_eager(name: str, backend: str, n_layers: int | None = None) -> None:
    model = _model(name, n_layers).train()  # dropout 0: train mode is deterministic
    eager_loss, eager_grads = _loss_and_grads(model, model, name)
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(model, backend=counter, dynamic=False)
    loss, grads = _loss_and_grads(model, compiled, name)
    assert counter.frame_count == 1
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(grads) == len(eager_grads) == n_trainable  # every parameter gets a gradient both ways
    assert sorted(grads) == sorted(eager_grads)
    assert abs(loss.item() - eager_loss.item()) <= FORWARD_TOLERANCE
    for n in eager_grads:
        torch.testing.assert_close(grads[n], eager_grads[n], **GRAD_TOLERANCE, msg=lambda m, n=n: f"{n}: {m}")


def test_compiled_training_step_gradients_match_eager_aot_eager():
    _compiled_gradients_match_eager("tiny-seq2seq", "aot_eager")


@needs_cxx
@pytest.mark.long
def test_compiled_training_step_gradients_match_eager_inductor():
    _compiled_gradients_match_eager("tiny-encoder", "inductor", n_layers=1)
