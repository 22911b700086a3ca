"""Greedy generation with a KV cache: `glassformer.generate.generate_lm` vs HF `generate`.

glassformer runs twice: prepared by `optimize_for_inference` as the `generate` command runs it,
and plain; the line's ratio is the prepared model's, the plain one's follows it. Each line also
gives the bytes read per generated token, the read limit and the fraction of the read bandwidth
each side reached, the limit read by the probes timed as more sides of the same interleaved timing
(`probe_sides`, `probed_limit`; see decoding.py).

Same GPT-2 weights on both sides, prompts of 16 random tokens, and exactly the same number of
new tokens: neither side has an end token to stop on (HF's eos_token_id is None, ours end_id
None), and HF also gets min_new_tokens = max_new_tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from common import Context, Line, have, skipped, time_sides
from flops import count_flops
from glassformer.generate import Stopping, generate_lm
from glassformer.speed.bandwidth import BANDWIDTH_BYTES, bytes_per_step, read_probes, weight_bytes
from models import VOCAB, gpt2_pair, optimized

PROMPT_LEN = 16
BATCHES = (1, 8)


def prompts(batch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(3)
    return torch.randint(1, VOCAB, (batch, PROMPT_LEN), generator=g).tolist()


def ours_fn(model, batch_prompts: list[list[int]], new_tokens: int):
    stopping = Stopping(max_new_tokens=new_tokens)

    def generate() -> list[list[int]]:
        return [g.tokens for g in generate_lm(model, batch_prompts, stopping=stopping)]

    return generate


def peer_fn(model, batch_prompts: list[list[int]], new_tokens: int, device: str):
    ids = torch.tensor(batch_prompts, device=device)
    mask = torch.ones_like(ids)
    model.generation_config.eos_token_id = None  # nothing to stop on: exactly new_tokens tokens

    @torch.inference_mode()
    def generate() -> list[list[int]]:
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            use_cache=True, pad_token_id=0,
        )
        return out[:, ids.size(1):].tolist()

    return generate


def generation_bytes(model, batch: int, new_tokens: int) -> int:
    """Bytes a generation reads: the prefill reads the weights once, each later step at its own context."""
    return weight_bytes(model) + sum(bytes_per_step(model, batch, PROMPT_LEN + i) for i in range(1, new_tokens))


def probe_sides(device: str) -> dict[str, Callable[[], float]]:
    """The two `read_probes` over a fresh 1 GiB fp32 tensor (kept alive by them), as sides of a timing:
    "read x.sum()" and "read C read"."""
    probe = torch.ones(BANDWIDTH_BYTES // 4, device=device)
    return {f"read {name}": read for name, read in read_probes(probe).items()}


def probed_limit(timing, probes: dict) -> tuple[float, str]:
    """The read limit in bytes/s, the faster probe's best rep (what the machine could read in the
    timing's window: a median let gpt2-small's decoding read 115% of it), and each probe's GB/s."""
    reads = {name: BANDWIDTH_BYTES / min(timing.seconds[name]) for name in probes}
    return max(reads.values()), ", ".join(f"{name.removeprefix('read ')} {rate / 1e9:.1f}" for name, rate in reads.items())


def read_note(read: int, tokens: int, seconds: dict[str, float], bandwidth: float) -> str:
    """MB read per token, the read limit in tokens/s, and the fraction of the bandwidth each side reached."""
    reached = ", ".join(f"{side} {read / s / bandwidth:.1%}" for side, s in seconds.items())
    return (f"{read / tokens / 1e6:.1f} MB read per token, read limit {tokens / (read / bandwidth):,.0f} tok/s at "
            f"{bandwidth / 1e9:.1f} GB/s; reached: {reached}")


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Fraction of rows whose generated tokens are identical (float rounding may split a tie)."""
    return sum(x == y for x, y in zip(a, b)) / len(a)


def make(case: str, side: str, device: str):
    """One side's generation (batch from case, 200 new tokens) for the memory probe."""
    ours, peer = gpt2_pair(device)
    batch_prompts = prompts(int(case))
    if side == "ours":
        return ours_fn(optimized(ours), batch_prompts, 200)
    return peer_fn(peer.eval(), batch_prompts, 200, device)


def run(ctx: Context, new_tokens: int = 200) -> None:
    if not have("transformers"):
        ctx.out(skipped("greedy generation vs HF generate", "transformers is not installed"))
        return
    plain, peer = gpt2_pair(ctx.device)
    plain.eval(), peer.eval()
    report_generations(ctx, "GPT-2 6L d384", optimized(plain), plain, peer, BATCHES, new_tokens)


def report_generations(ctx: Context, label: str, ours, plain, peer, batches, new_tokens: int) -> None:
    """A line per batch size: ours (prepared), plain and peer generating new_tokens greedily from the same
    prompts, timed with the read probes as more sides (the limit beside each line)."""
    probes = probe_sides(ctx.device)
    for batch in batches:
        batch_prompts = prompts(batch)
        sides = {"ours": ours_fn(ours, batch_prompts, new_tokens),
                 "plain": ours_fn(plain, batch_prompts, new_tokens),
                 "peer": peer_fn(peer, batch_prompts, new_tokens, ctx.device), **probes}
        ours_tokens, plain_tokens, peer_tokens = sides["ours"](), sides["plain"](), sides["peer"]()
        assert all(len(t) == new_tokens for t in ours_tokens + peer_tokens), "a side stopped early"
        same = agreement(ours_tokens, peer_tokens)
        same_plain = agreement(ours_tokens, plain_tokens)
        flops = count_flops(sides["plain"])  # the same products: the C code's are hidden from the counter
        timing = time_sides(sides, reps=ctx.reps, device=ctx.device)
        bandwidth, probed = probed_limit(timing, probes)
        name = f"greedy generation {label}, batch {batch}, {PROMPT_LEN}-token prompt + {new_tokens} new, KV cache"
        read = read_note(generation_bytes(ours, batch, new_tokens), batch * new_tokens,
                         {"glassformer": timing.median("ours"), "HF generate": timing.median("peer")}, bandwidth)
        ctx.report(Line(name, timing.median("ours"), timing.median("peer"), "HF generate", flops=flops,
                        work=batch * new_tokens, unit="tok", plain_s=timing.median("plain"),
                        note=f"identical outputs in {same:.0%} of rows (optimized vs plain: {same_plain:.0%}); "
                             f"{read} (GB/s read: {probed}); {timing.noise()}"))
