"""optimize_for_inference changes how the model computes, never what: every family, every decoder."""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.generate import Sampling, Stopping, beam_search, generate_lm, generate_seq2seq
from glassformer.inspect import record
from glassformer.models import build_model
from glassformer.speed import optimize_for_inference
from glassformer.speed.fused_qkv import FusedSelfAttention
from glassformer.speed.small_batch import SmallBatchLinear

from tiny_models import tiny_inputs

FAMILIES = ["tiny-seq2seq", "tiny-lm", "tiny-encoder", "article-b"]
TOLERANCE = 1e-5  # fp32: the kernels add the same products in another order


def _pair(preset, **changes):
    """(plain, transformed) with the same weights."""
    torch.manual_seed(0)
    config = get_preset(preset)
    if preset.startswith("tiny"):
        config = config.replace(vocab_size=40, max_len=64, **changes)
    plain = build_model(config).eval()
    fast = build_model(config).eval()
    fast.load_state_dict(plain.state_dict())
    return plain, fast


@pytest.mark.parametrize("preset", FAMILIES)
@pytest.mark.parametrize("threads", [1, 2])
def test_transformed_model_gives_the_plain_outputs_for_every_family(preset, threads):
    torch.set_num_threads(threads)
    plain, fast = _pair(preset)
    names = list(plain.state_dict())
    done = optimize_for_inference(fast)
    assert done.fused_qkv == sum(1 for m in fast.modules() if isinstance(m, FusedSelfAttention)) > 0
    assert sum(done.kernels.values()) == sum(1 for m in fast.modules() if isinstance(m, SmallBatchLinear)) > 0
    assert list(fast.state_dict()) == names  # same parameters under the same names
    for name, tensor in fast.state_dict().items():
        assert torch.equal(tensor, plain.state_dict()[name]), name
    for batch in (1, 2):  # 1 row per position: the small-batch kernels; more: F.linear
        inputs = tiny_inputs(plain, batch)
        with torch.inference_mode():
            expected, got = plain(*inputs), fast(*inputs)
        assert (got - expected).abs().max() <= TOLERANCE


def test_tied_weights_stay_shared_and_loading_new_weights_reaches_the_fused_product():
    plain, fast = _pair("tiny-lm")
    optimize_for_inference(fast)
    assert fast.lm_head.proj.weight is fast.embed.token.weight
    attn = fast.decoder.layers[0].self_attn
    storage = attn.qkv_weight.untyped_storage().data_ptr()
    for i, part in enumerate((attn.w_q, attn.w_k, attn.w_v)):  # views of the fused weight, not copies
        assert part.weight.untyped_storage().data_ptr() == storage
        assert part.weight.data_ptr() == attn.qkv_weight[64 * i:].data_ptr()
    # New values loaded into the ordinary parameter names change what the fused product computes.
    torch.manual_seed(5)
    other = build_model(plain.config).eval()
    fast.load_state_dict(other.state_dict())
    (ids,) = tiny_inputs(plain)
    with torch.inference_mode():
        assert (fast(ids) - other(ids)).abs().max() <= TOLERANCE


def test_greedy_sampled_and_beam_decoding_give_the_plain_models_tokens():
    plain, fast = _pair("tiny-lm", tie_output=False)
    optimize_for_inference(fast)
    prompts = [[5, 6, 7, 8], [9, 10]]
    for sampling in (Sampling(), Sampling(temperature=0.8, top_k=10, seed=3)):
        stop = Stopping(max_new_tokens=12)
        a = generate_lm(plain, prompts, sampling, stop)
        b = generate_lm(fast, prompts, sampling, stop)
        assert [g.tokens for g in a] == [g.tokens for g in b]
    plain, fast = _pair("tiny-seq2seq", tie_output=False)
    optimize_for_inference(fast)
    sources = [[5, 6, 7, 8, 2], [9, 10, 2]]
    stop = Stopping(end_id=2, max_new_tokens=10)
    a, b = generate_seq2seq(plain, sources, 1, stopping=stop), generate_seq2seq(fast, sources, 1, stopping=stop)
    assert [g.tokens for g in a] == [g.tokens for g in b]
    a = beam_search(plain, sources, 1, 2, beam_size=3, nbest=2, max_new_tokens=8)
    b = beam_search(fast, sources, 1, 2, beam_size=3, nbest=2, max_new_tokens=8)
    assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b]
    for hyps_a, hyps_b in zip(a, b):
        for x, y in zip(hyps_a, hyps_b):
            assert abs(x.score - y.score) <= 1e-4


def test_hook_points_of_the_transformed_model_still_fire_and_change_values():
    plain, fast = _pair("tiny-lm")
    optimize_for_inference(fast)
    (ids,) = tiny_inputs(plain, batch=1)
    with torch.inference_mode():
        with record(plain, values=True) as a:
            plain(ids)
        with record(fast, values=True) as b:
            fast(ids)
    assert a.names() == b.names()
    for name in a.names():
        torch.testing.assert_close(b.value(name), a.value(name), atol=TOLERANCE, rtol=0, msg=name)
    shift = torch.randn(64)
    handle = fast.decoder.hook_out.register_forward_hook(lambda m, i, o: o + shift)
    with torch.inference_mode():
        moved = fast(ids)
        expected = plain(ids) + shift @ plain.lm_head.proj.weight.T
    handle.remove()
    assert (moved - expected).abs().max() <= TOLERANCE


def test_switches_turn_each_part_off_and_cpu_keeps_fp32():
    _, fast = _pair("tiny-lm")
    done = optimize_for_inference(fast, fused_qkv=False, small_batch=False, lookups=False, flat_decode=False)
    assert done.fused_qkv == 0 and not done.kernels and not done.lookups and done.dtype == torch.float32
    assert not done.flat_decode and "forward" not in vars(fast)
    assert not any(isinstance(m, (FusedSelfAttention, SmallBatchLinear)) for m in fast.modules())
    assert "self_attn" not in vars(fast.decoder.layers[0])
    assert done.summary() == "inference speed-ups on cpu: none apply"
    assert not fast.training


@pytest.mark.gpu
def test_on_cuda_bf16_weights_and_fused_qkv_agree_with_fp32():
    plain, fast = _pair("tiny-lm")
    plain, fast = plain.cuda(), fast.cuda()
    done = optimize_for_inference(fast)
    assert done.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    (ids,) = tiny_inputs(plain)
    with torch.inference_mode():
        expected, got = plain(ids.cuda()), fast(ids.cuda()).float()
    assert (got - expected).abs().max() <= 0.05 * expected.abs().max()


def test_submodules_found_as_attributes_follow_a_replacement_by_assignment():
    plain, fast = _pair("tiny-lm")
    done = optimize_for_inference(fast)
    assert done.lookups and vars(fast.decoder.layers[0])["self_attn"] is fast.decoder.layers[0].self_attn
    assert done.summary().startswith("inference speed-ups on cpu: fused Q/K/V in 2 self-attention modules; ")
    # A later replacement by assignment (as peft does it) is what the model then uses.
    layer = fast.decoder.layers[1]
    replaced = []
    new_ffn = type(layer.ffn)(plain.config)
    new_ffn.load_state_dict(layer.ffn.state_dict())
    new_ffn.register_forward_hook(lambda m, i, o: replaced.append(o.shape))
    layer.ffn = new_ffn
    assert layer.ffn is new_ffn and layer._modules["ffn"] is new_ffn
    (ids,) = tiny_inputs(plain, batch=1)
    with torch.inference_mode():
        assert (fast(ids) - plain(ids)).abs().max() <= TOLERANCE
    assert replaced == [(1, 7, 64)]


@pytest.mark.slow
def test_compile_option_gives_the_plain_outputs():
    # Measured on 2 CPU cores: 19 s to compile this forward, 34 s more for the decode steps,
    # which is why the decoding commands leave it off.
    plain, fast = _pair("tiny-lm")
    assert optimize_for_inference(fast, compile=True).compiled
    (ids,) = tiny_inputs(plain)
    with torch.inference_mode():
        assert (fast(ids) - plain(ids)).abs().max() <= TOLERANCE
