"""Decoder-only generation speed with and without the KV cache, at growing output lengths.

Without a cache every step recomputes the whole prefix (quadratic in the length); with it each
step processes one token against cached keys and values, so the speed-up grows with length.

    python benchmarks/kv_cache.py [--lengths 64 128 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from glassformer.config import get_preset
from glassformer.generate import Stopping, generate_lm
from glassformer.models import build_model


def tokens_per_second(model, prompt: list[int], new_tokens: int, use_cache: bool) -> float:
    """Greedy generation of exactly new_tokens tokens, timed."""
    stopping = Stopping(max_new_tokens=new_tokens)
    start = time.perf_counter()
    [out] = generate_lm(model, [prompt], stopping=stopping, use_cache=use_cache)
    elapsed = time.perf_counter() - start
    assert len(out.tokens) == new_tokens
    return new_tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--preset", default="small-lm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: a model this small gains nothing from more, and "
                             "threads waiting on each other on a busy machine swamp the measurement)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = get_preset(args.preset).replace(dropout=0.0, max_len=max(args.lengths) + 16)
    model = build_model(config).to(args.device).eval()
    prompt = [1] + torch.randint(5, config.vocab_size, (7,)).tolist()
    for use_cache in (True, False):  # warm-up: first calls pay one-off setup costs
        tokens_per_second(model, prompt, 16, use_cache)

    print(f"{args.preset}: d_model={config.d_model}, {config.n_layers} layers, prompt {len(prompt)} tokens, "
          f"device {args.device}, threads={torch.get_num_threads()}")
    print(f"{'new tokens':>10}  {'no cache tok/s':>14}  {'cache tok/s':>11}  {'speed-up':>8}")
    for n in args.lengths:
        without = tokens_per_second(model, prompt, n, use_cache=False)
        with_cache = tokens_per_second(model, prompt, n, use_cache=True)
        print(f"{n:>10}  {without:>14.1f}  {with_cache:>11.1f}  {with_cache / without:>7.2f}x")


if __name__ == "__main__":
    main()
