"""Batch-1 greedy decoding against the memory-read limit, and bf16 weights against fp32.

Each generated token reads every weight once (and the KV cache), so its time is bounded below
by bytes read / read bandwidth. The bandwidth is measured in this run as more sides of the
same interleaved timing: the two `read_probes` over a 1 GiB fp32 tensor (`x.sum()`, and C code
reading four streams per thread as the C products do), rep by rep between the generations, so
that they read under the conditions the decoding ran in (a shared machine's bandwidth moves with
its neighbours: 18-35 GB/s on the same 2-core VM on different days); the faster probe's best rep
gives the limit: what the machine could read in that window (a median let gpt2-small's decoding,
500 MB a token, read 115% of it). (The best of 5 before and after the section is printed too.) The bytes are
counted from the model as prepared (`bytes_per_step`): the weights once per step, lookup tables
as one row, and each step's keys and values at its own context length. "reached" is (bytes read
by the whole generation / its time) / bandwidth, for each side; HF `generate` reads the same fp32
bytes. The line also says whether each step's layers ran as one call into C
(`glassformer.speed.native_layers`) and which kernel the measured choice gave each product of one
row (the kernel of the products outside the C call, the output projection among them).

Models: the 6-layer, 384-wide GPT-2 (vocabulary 8,000), gpt2-small's shape (124M parameters,
vocabulary 50,257) and the 6-layer LLaMA-shaped model of `models.LLAMA_SIZES` (against
`LlamaForCausalLM`), random weights, the same on every side.

bf16 weights (`optimize_for_inference(weights="bf16")`, `glassformer generate --weights bf16`):
a line per model with tokens/s against the fp32 prepared model, and the greedy agreement with
fp32 (free-running and teacher-forced, `glassformer.speed.weights_check`). Random weights leave
near-ties between logits that bf16 rounding flips, so agreement and perplexity are also given for
a small GPT trained here for a few hundred steps on a random Markov chain, with every product in
bf16 (the most bf16 can change), on held-out sequences of the same chain.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from common import Context, Line, have, skipped, time_sides
from generation import PROMPT_LEN, generation_bytes, ours_fn, peer_fn, probe_sides, probed_limit, read_note
from glassformer.config import get_preset
from glassformer.models import build_model
from glassformer.speed import optimize_for_inference
from glassformer.speed.bandwidth import read_bandwidth
from glassformer.speed.weights_check import compare_models
from models import GPT2_SIZES, GPT2_SMALL_SIZES, GPT2_SMALL_VOCAB, VOCAB, gpt2_pair, llama_pair, optimized

MODELS = {  # label: (pair of models, their vocabulary, new tokens)
    "GPT-2 6L d384": (lambda device: gpt2_pair(device, sizes=GPT2_SIZES, vocab=VOCAB), VOCAB, 200),
    "gpt2-small (124M)": (lambda device: gpt2_pair(device, sizes=GPT2_SMALL_SIZES, vocab=GPT2_SMALL_VOCAB),
                          GPT2_SMALL_VOCAB, 100),
    "LLaMA-shaped 6L d384": (llama_pair, VOCAB, 200),
}
CHAIN_VOCAB = 128


def prompts(batch: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(3)
    return torch.randint(1, vocab, (batch, PROMPT_LEN), generator=g).tolist()


def markov_chain(n_sequences: int, length: int, seed: int) -> torch.Tensor:
    """Sequences of one fixed random Markov chain over CHAIN_VOCAB tokens, most mass on a few successors."""
    g = torch.Generator().manual_seed(0)
    transitions = torch.softmax(3.0 * torch.randn(CHAIN_VOCAB, CHAIN_VOCAB, generator=g), dim=-1)
    g.manual_seed(seed)
    ids = torch.empty(n_sequences, length, dtype=torch.long)
    ids[:, 0] = torch.randint(0, CHAIN_VOCAB, (n_sequences,), generator=g)
    for t in range(1, length):
        ids[:, t] = torch.multinomial(transitions[ids[:, t - 1]], 1, generator=g)[:, 0]
    return ids


def trained_chain_model(steps: int, device: str):
    """A 2-layer, 128-wide GPT trained on the chain (AdamW, batch 16 x 32)."""
    torch.manual_seed(0)
    config = get_preset("gpt2-small").replace(vocab_size=CHAIN_VOCAB, d_model=128, n_heads=4, d_ff=512,
                                             n_layers=2, max_len=128, dropout=0.0, attn_dropout=0.0)
    model = build_model(config).to(device)
    data = markov_chain(4096, 33, seed=1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (16,), generator=g)]
        loss = F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def run(ctx: Context) -> None:
    if not have("transformers"):
        ctx.out(skipped("decoding against the read limit", "transformers is not installed"))
        return
    before = read_bandwidth(device=ctx.device)
    probes = probe_sides(ctx.device)
    ctx.out(f"read bandwidth (faster of {' and '.join(p.removeprefix('read ') for p in probes)} over 1 GiB fp32, "
            f"best of 5): {before / 1e9:.1f} GB/s")
    for label, (pair, vocab, new_tokens) in MODELS.items():
        if ctx.quick:
            new_tokens //= 4
        plain, peer = pair(ctx.device)
        plain.eval(), peer.eval()
        fp32 = copy.deepcopy(plain)
        prepared = optimize_for_inference(fp32)
        bf16 = copy.deepcopy(plain)
        done = optimize_for_inference(bf16, weights="bf16")
        del plain
        batch_prompts = prompts(1, vocab)
        sides = {"ours": ours_fn(fp32, batch_prompts, new_tokens), "bf16": ours_fn(bf16, batch_prompts, new_tokens),
                 "peer": peer_fn(peer, batch_prompts, new_tokens, ctx.device), **probes}
        timing = time_sides(sides, reps=ctx.reps, device=ctx.device)
        bandwidth, probed = probed_limit(timing, probes)
        read = {"ours": generation_bytes(fp32, 1, new_tokens), "bf16": generation_bytes(bf16, 1, new_tokens)}
        name = f"greedy batch 1, {label}, {PROMPT_LEN}-token prompt + {new_tokens} new, fp32"
        note = read_note(read["ours"], new_tokens, {"glassformer": timing.median("ours"),
                                                    "HF generate": timing.median("peer")}, bandwidth)
        used = ", ".join(f"{name} x{n}" for name, n in prepared.kernels.most_common())
        layers = "each step's layers in one C call" if prepared.native_layers else "layers through PyTorch"
        ctx.report(Line(name, timing.median("ours"), timing.median("peer"), "HF generate", work=new_tokens,
                        unit="tok", note=f"{note} (GB/s read: {probed}); {layers}; one-row kernels: {used}; "
                             f"{timing.noise()}"))
        check = compare_models(fp32, bf16, batch_prompts + prompts(4, vocab)[1:], min(new_tokens, 50), [])
        ctx.report(Line(f"greedy batch 1, {label}, bf16 weights", timing.median("bf16"), timing.median("ours"),
                        "glassformer fp32", work=new_tokens, unit="tok", ratio_label="bf16 speed / fp32",
                        note=f"{read_note(read['bf16'], new_tokens, {'bf16': timing.median('bf16')}, bandwidth)}; "
                             f"random weights: greedy "
                             f"agreement {check.agreement:.0%}, teacher-forced {check.argmax_agreement:.1%} of "
                             f"{check.tokens} tokens; {timing.paired_ratio('ours', 'bf16'):.2f}x median of "
                             f"per-rep ratios; bf16 measured faster for {done.bf16_products} of "
                             f"{done.products} products"))
        del fp32, bf16, peer, sides
    del probes
    after = read_bandwidth(device=ctx.device)
    ctx.out(f"read bandwidth after the section: {after / 1e9:.1f} GB/s")
    steps = 100 if ctx.quick else 200
    trained = trained_chain_model(steps, ctx.device)
    everywhere = optimized(trained, small_batch=False, weights="bf16")
    check = compare_models(trained, everywhere, markov_chain(32, 8, seed=5).tolist(), 32,
                           markov_chain(64, 33, seed=6).tolist())
    ctx.out(f"bf16 weights in every product, GPT 2L d128 trained {steps} steps on a Markov chain "
            f"({CHAIN_VOCAB} tokens): {check.summary()}")
