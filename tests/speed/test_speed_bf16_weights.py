"""bf16 weights: products in bf16 with fp32 activations, chosen per shape, and what they cost in quality."""

import pytest
import torch
import torch.nn.functional as F

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.models import build_model
from glassformer.speed import choice as choice_module
from glassformer.speed import optimize_for_inference
from glassformer.speed.bf16_weights import WidenedEmbedding, mixed_linear
from glassformer.speed.choice import Choice
from glassformer.speed.kernels import KERNELS, column_major
from glassformer.speed.small_batch import SmallBatchLinear
from glassformer.speed.weights_check import compare_models, perplexity

from tiny_models import tiny_inputs, tiny_model

VOCAB = 48
STEPS = 120


def markov_chain(n_sequences: int, length: int, seed: int) -> torch.Tensor:
    """Sequences from a fixed random Markov chain whose rows put most mass on 2-3 successors."""
    g = torch.Generator().manual_seed(0)  # the same chain for every seed
    transitions = torch.softmax(3.0 * torch.randn(VOCAB, VOCAB, generator=g), dim=-1)
    g.manual_seed(seed)
    ids = torch.empty(n_sequences, length, dtype=torch.long)
    ids[:, 0] = torch.randint(0, VOCAB, (n_sequences,), generator=g)
    for t in range(1, length):
        ids[:, t] = torch.multinomial(transitions[ids[:, t - 1]], 1, generator=g)[:, 0]
    return ids


@pytest.fixture(scope="module")
def trained():
    """A 2-layer, 64-wide GPT trained on the chain (tied output projection), in eval mode."""
    # Module fixtures are set up before the per-test one thread of conftest: two threads of tiny
    # products waiting on each other on a busy machine took 10x longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = get_preset("tiny-lm").replace(vocab_size=VOCAB, max_len=64)
    model = build_model(config)
    data = markov_chain(1024, 25, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        batch = data[torch.randint(0, len(data), (16,), generator=g)]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


def _copy(model):
    twin = build_model(model.config).eval()
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_mixed_products_equal_f_linear_over_the_bf16_rounded_weight(layout):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(96, 40, generator=g).bfloat16()
    w = column_major(weight) if layout == "column-major" else weight
    bias = torch.randn(96, generator=g)
    for rows in (1, 3, 17):
        x = torch.randn(rows, 40, generator=g)
        exact = F.linear(x.double(), weight.double(), bias.double())
        for kernel in [*KERNELS, "upcast"]:
            if kernel == "bag":
                continue  # fp32 weights only
            with torch.inference_mode():
                got = mixed_linear(x, w, bias, kernel)
            assert got.dtype == torch.float32 and got.shape == (rows, 96)
            # bf16 kernels round x to bf16 (8 bits of mantissa): |error| <= 2^-8 * sum |x_i w_i|.
            bound = 2 ** -8 * (x.double().abs() @ weight.double().abs().t()) + 1e-5
            assert ((got.double() - exact).abs() <= bound).all(), (kernel, rows)
        torch.testing.assert_close(mixed_linear(x, w, bias, "upcast"), F.linear(x, weight.float(), bias))


def test_bf16_weights_everywhere_keep_activations_norms_and_biases_in_fp32(trained):
    model = _copy(trained)
    done = optimize_for_inference(model, small_batch=False, weights="bf16")  # bf16 for every product
    # 2 fused Q/K/V + 2 x (Wo, W1, W2) + the output projection
    assert (done.bf16_products, done.products) == (9, 9)
    assert "bf16 weights in 9 of 9 products" in done.summary()
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert {n for n, d in dtypes.items() if d == torch.bfloat16} == {
        n for n in dtypes if n.endswith("weight") and "norm" not in n and "position" not in n}
    assert model.lm_head.proj.weight is model.embed.token.weight  # still tied, now bf16
    assert isinstance(model.embed.token, WidenedEmbedding)
    ids = markov_chain(2, 20, seed=9)
    with torch.inference_mode():
        expected, got = trained(ids), model(ids)
        hidden = model.embed(ids)
    assert got.dtype == hidden.dtype == torch.float32
    difference = (got - expected).abs().max().item()
    # bf16 rounding of the weights moves the logits, but little (measured 0.011).
    assert 1e-4 < difference < 0.15, difference


def test_bf16_weights_agree_with_fp32_on_greedy_tokens_and_held_out_perplexity(trained):
    model = _copy(trained)
    optimize_for_inference(model, small_batch=False, weights="bf16")
    prompts = markov_chain(16, 4, seed=5).tolist()
    held_out = markov_chain(32, 33, seed=6).tolist()
    check = compare_models(trained, model, prompts, new_tokens=24, held_out=held_out)
    assert check.tokens == 16 * 24 and check.scored == 32 * 32
    # Trained: fp32 perplexity measured 5.50 (an untrained model: about 48, the vocabulary).
    assert check.perplexity < 7.0
    assert check.perplexity == pytest.approx(perplexity(trained, held_out)[0], rel=1e-9)
    # Measured: free-running 100%, teacher-forced 99.7%, perplexity -0.01%.
    assert check.agreement >= 0.98 and check.argmax_agreement >= 0.98, check.summary()
    assert abs(check.perplexity_change) <= 0.005, check.summary()


@pytest.mark.parametrize("preset", ["tiny-seq2seq", "tiny-encoder", "tiny-lm"])
def test_every_family_runs_with_bf16_weights_and_fp32_activations(preset):
    plain = tiny_model(preset)
    fast = tiny_model(preset)
    done = optimize_for_inference(fast, small_batch=False, weights="bf16")
    assert done.bf16_products == done.products > 0
    inputs = tiny_inputs(plain)
    with torch.inference_mode():
        expected, got = plain(*inputs), fast(*inputs)
    assert got.dtype == torch.float32
    # Random tiny models: logits within 2% of their largest value (bf16 keeps 8 bits of mantissa).
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()


def test_the_measured_choice_decides_which_weights_become_bf16(trained, monkeypatch):
    asked = []

    def fake_choose(out_features, in_features, bias, dtype, weights="fp32", only=None):
        asked.append(weights)
        wide = out_features > in_features  # here: bf16 for the fused Q/K/V and W1 only
        return Choice(False, ("mv", "linear", "upcast"), "bfloat16" if wide and weights == "bf16" else "float32")

    monkeypatch.setattr("glassformer.speed.small_batch.choose", fake_choose)
    monkeypatch.setattr("glassformer.speed.fused_qkv.choose", fake_choose)
    model = _copy(trained)
    done = optimize_for_inference(model, weights="bf16")
    assert set(asked) == {"bf16"} and len(asked) == 9
    assert (done.bf16_products, done.products) == (4, 9)
    layer = model.decoder.layers[0]
    assert layer.self_attn.qkv_weight.dtype == layer.ffn.w_1.weight.dtype == torch.bfloat16
    assert layer.ffn.w_2.weight.dtype == layer.self_attn.w_o.weight.dtype == torch.float32
    assert model.lm_head.proj.weight.dtype == torch.float32 and not isinstance(model.embed.token, WidenedEmbedding)
    assert isinstance(layer.ffn.w_1, SmallBatchLinear)
    ids = markov_chain(1, 20, seed=9)
    with torch.inference_mode():
        for t in (1, 3, 20):  # the mv, linear and upcast kernels of the bf16 products
            assert (model(ids[:, :t]) - trained(ids[:, :t])).abs().max() < 0.15


def test_measuring_with_bf16_weights_picks_a_storage_dtype_layout_and_kernels():
    torch.set_num_threads(2)
    got = choice_module.measure(256, 64, True, torch.float32, "bf16")
    assert got.dtype in ("float32", "bfloat16") and len(got.kernels) == 3
    assert all(k in choice_module.KERNEL_NAMES for k in got.kernels)
    assert got.dtype == "float32" or "bag" not in got.kernels


def test_an_unknown_weights_setting_is_a_user_error(trained):
    with pytest.raises(UserError, match="weights must be one of fp32, bf16, got 'int8'"):
        optimize_for_inference(_copy(trained), weights="int8")


@pytest.mark.gpu
def test_on_cuda_bf16_weights_go_to_every_product_and_keep_fp32_activations(trained):
    model = _copy(trained).cuda()
    done = optimize_for_inference(model, weights="bf16")
    assert (done.bf16_products, done.products) == (9, 9) and done.dtype == torch.float32
    ids = markov_chain(2, 20, seed=9)
    with torch.inference_mode():
        got = model(ids.cuda())
        expected = trained(ids)
    assert got.dtype == torch.float32
    assert (got.cpu() - expected).abs().max() < 0.15
