"""The products of one decode step, by weight layout and kernel: what `glassformer.speed` chooses from.

    python benchmarks/small_batch_linear.py [--threads N] [--reps N]

Runs the 25 weight products of one decode step of the benchmark GPT-2 (6 layers of Q/K/V fused
384 x 1152, 384 x 384, 384 x 1536 and 1536 x 384, and the 8000 x 384 output layer: 55 MB of fp32)
one after the other, so that each weight comes from memory as it does when decoding, for 1 to 16
rows, and prints the median time of the whole step for each way of multiplying:

- `nn.Linear`: F.linear on the usual row-major [out, in] weight;
- `column-major`: F.linear on the same weight stored [in, out] in memory;
- `split bmm`: one baddbmm over per-thread blocks of output features (column-major weight);
- `embedding_bag`: weighted sums of the column-major weight's rows;
- `measured choice`: `SmallBatchLinear` with the layout and kernels `glassformer.speed.choice`
  measured for each shape on this machine, with its dispatch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch import nn  # noqa: E402

from glassformer.speed.kernels import bag_linear, column_major, split_linear  # noqa: E402
from glassformer.speed.small_batch import use_small_batch_kernels  # noqa: E402

SHAPES = [(1152, 384), (384, 384), (1536, 384), (384, 1536)] * 6 + [(8000, 384)]


def step_time(products: list, reps: int) -> float:
    """Median seconds of running every product once."""
    for _ in range(3):
        for product in products:
            product()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for product in products:
            product()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows_major = [(torch.randn(o, i), torch.randn(o)) for o, i in SHAPES]
    cols_major = [(column_major(w), b) for w, b in rows_major]
    chosen = []
    for w, b in rows_major:
        layer = nn.Linear(w.size(1), w.size(0))
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        use_small_batch_kernels(layer)
        chosen.append((layer.weight, layer))
    threads = torch.get_num_threads()
    megabytes = sum(w.numel() * 4 for w, _ in rows_major) / 1e6
    print(f"{len(SHAPES)} products, {megabytes:.0f} MB of fp32 weights, {threads} threads; "
          f"median ms per decode step's products (GB/s of weights read)")
    ways = {
        "nn.Linear": (rows_major, lambda x, w, b: F.linear(x, w, b)),
        "column-major": (cols_major, lambda x, w, b: F.linear(x, w, b)),
        "split bmm": (cols_major, split_linear),
        "embedding_bag": (cols_major, bag_linear),
        "measured choice": (chosen, lambda x, w, layer: layer(x)),
    }
    print(f"{'rows':>4}  " + "  ".join(f"{name:>20}" for name in ways))
    with torch.inference_mode():
        for rows in (1, 2, 4, 8, 16):
            inputs = {n: torch.randn(rows, n) for n in (384, 1536)}
            cells = []
            for weights, multiply in ways.values():
                products = [lambda w=w, b=b, f=multiply: f(inputs[w.size(1)], w, b) for w, b in weights]
                seconds = step_time(products, args.reps)
                cells.append(f"{seconds * 1e3:7.2f} ({megabytes / 1e3 / seconds:4.1f})")
            print(f"{rows:>4}  " + "  ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:])
