"""The C kernels compiled at first use: F.linear's numbers, a fallback everywhere they cannot run."""

import pytest
import torch
import torch.nn.functional as F

from glassformer.config import get_preset
from glassformer.generate import Stopping, generate_lm
from glassformer.models import build_model
from glassformer.speed import choice as choice_module
from glassformer.speed import native, optimize_for_inference
from glassformer.speed.choice import Choice
from glassformer.speed.kernels import column_major
from glassformer.speed.native import native_linear

needs_native = pytest.mark.skipif(not native.available(), reason=f"native kernels: {native.why_unavailable()}")

# (out, in): in below, at and past the 8- and 16-wide loops, with tails; out not a multiple of anything.
SHAPES = [(37, 5), (29, 16), (50, 70), (33, 131)]


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """_load forgets the library for the test (and again after it), with a cache folder of its own."""
    monkeypatch.setenv("GLASSFORMER_CACHE_DIR", str(tmp_path))
    native._load.cache_clear()
    yield
    native._load.cache_clear()


@needs_native
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_native_products_equal_fp64_products_of_the_same_weight(threads, dtype, layout):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    for out_features, in_features in SHAPES:
        weight = torch.randn(out_features, in_features, generator=g).to(dtype)
        if layout == "column-major":
            weight = column_major(weight)
        bias = torch.randn(out_features, generator=g)
        for rows in (1, 2, 3, 4, 5, 8, 16):
            x = torch.randn(rows, in_features, generator=g)
            for b in (bias, None):
                exact = F.linear(x.double(), weight.double(), None if b is None else b.double())
                with torch.inference_mode():
                    got = native_linear(x, weight, b)
                assert got.dtype == torch.float32 and got.shape == (rows, out_features)
                # fp32 sums in another order than F.linear's: within fp32 rounding of sum |x_i w_i|.
                bound = 1e-6 * (x.double().abs() @ weight.double().abs().t()) + 1e-6
                assert ((got.double() - exact).abs() <= bound).all(), (out_features, in_features, rows, dtype)


@needs_native
def test_native_keeps_leading_dimensions_and_reads_views_at_their_offset():
    g = torch.Generator().manual_seed(1)
    stacked = torch.randn(3, 24, 40, generator=g)  # the middle weight starts 960 numbers in
    weight, bias = stacked[1], torch.randn(24, generator=g)
    x = torch.randn(2, 3, 40, generator=g)
    with torch.inference_mode():
        got = native_linear(x, weight, bias)
    assert got.shape == (2, 3, 24)
    torch.testing.assert_close(got, F.linear(x, weight, bias), atol=1e-5, rtol=1e-5)


def test_native_falls_back_to_f_linear_where_it_cannot_run():
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(20, 12, generator=g, requires_grad=True)
    x = torch.randn(3, 12, generator=g)
    y = native_linear(x, weight, None)  # gradients wanted: the C code has none
    assert y.grad_fn is not None
    y.sum().backward()
    torch.testing.assert_close(weight.grad, torch.ones(20, 3) @ x)
    with torch.inference_mode():
        strided = weight.detach()[:, ::2]  # neither layout
        torch.testing.assert_close(native_linear(x[:, :6], strided, None), F.linear(x[:, :6], strided))
        half = weight.detach().half()  # neither fp32 nor bf16
        torch.testing.assert_close(native_linear(x, half, None), F.linear(x, half.float()))


def test_turned_off_or_without_a_compiler_the_kernel_is_no_candidate(monkeypatch, fresh_build):
    monkeypatch.setenv("GLASSFORMER_NATIVE", "0")
    assert not native.available() and native.why_unavailable() == "turned off by GLASSFORMER_NATIVE=0"
    assert all(c[2] != "native" for c in choice_module._candidates(torch.float32, "bf16", 1))
    x, weight = torch.randn(2, 8), torch.randn(4, 8)
    torch.testing.assert_close(native_linear(x, weight, None), F.linear(x, weight))
    monkeypatch.delenv("GLASSFORMER_NATIVE")
    native._load.cache_clear()
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert not native.available() and native.why_unavailable() == "no C compiler (no-such-compiler-here) on PATH"


@pytest.mark.skipif(not native.available() or native.platform.system() != "Linux", reason="needs the native kernels")
def test_a_failing_compiler_is_reported_in_one_line_and_leaves_no_library(monkeypatch, fresh_build, tmp_path):
    monkeypatch.setenv("CC", "false")  # exits 1 without a word
    assert not native.available() and native.why_unavailable() == "false failed: exit 1"
    assert list((tmp_path / "native").iterdir()) == []
    # A cache folder that cannot be made: the same, never an exception.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("GLASSFORMER_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    monkeypatch.delenv("CC")
    native._load.cache_clear()
    assert not native.available() and native.why_unavailable().startswith("cc failed: [Errno 20] Not a directory")


@needs_native
def test_compiled_once_into_the_cache_then_loaded(fresh_build, tmp_path):
    assert native.available() and native.why_unavailable() == ""
    built = list((tmp_path / "native").glob("native-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native._load.cache_clear()
    assert native.available() and built[0].stat().st_mtime_ns == stamp  # not compiled again


@needs_native
@pytest.mark.parametrize("weights", ["fp32", "bf16"])
def test_a_model_on_native_kernels_decodes_as_the_plain_model(weights, monkeypatch):
    """Every product through the C kernel (as a measurement may choose): the plain model's logits and tokens."""
    torch.manual_seed(0)
    config = get_preset("tiny-lm").replace(vocab_size=50, max_len=32)
    plain = build_model(config).eval()
    fast = build_model(config).eval()
    fast.load_state_dict(plain.state_dict())
    dtype = "bfloat16" if weights == "bf16" else "float32"

    def native_everywhere(out_features, in_features, bias, dt, w="fp32", only=None):
        return Choice(False, ("native", "native", "native"), dtype)

    monkeypatch.setattr("glassformer.speed.small_batch.choose", native_everywhere)
    monkeypatch.setattr("glassformer.speed.fused_qkv.choose", native_everywhere)
    done = optimize_for_inference(fast, weights=weights)
    assert set(done.kernels) == {"native"} and done.flat_decode
    assert done.bf16_products == (done.products if weights == "bf16" else 0)
    if weights == "bf16":  # the reference: the plain model with the same bf16-rounded weights
        with torch.no_grad():
            for module in plain.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.copy_(module.weight.bfloat16().float())
    ids = torch.randint(1, 50, (1, 9))
    with torch.inference_mode():  # 9 rows: the 5-16 row bucket, also native
        torch.testing.assert_close(fast(ids), plain(ids), atol=2e-5, rtol=1e-5)
    stopping = Stopping(max_new_tokens=8)
    got = generate_lm(fast, [[5, 6, 7], [9]], stopping=stopping, keep_logits=True)
    want = generate_lm(plain, [[5, 6, 7], [9]], stopping=stopping, keep_logits=True)
    for a, b in zip(got, want):
        assert a.tokens == b.tokens
        torch.testing.assert_close(a.logits, b.logits, atol=2e-5, rtol=1e-5)
