"""glassformer against PyTorch's and Hugging Face's implementations, side by side in one process.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--threads N] [--only NAME ...]

Each line ends in `glassformer/peer = R x` with R = peer time / glassformer time: above 1 means
glassformer is faster. Both sides of a comparison use the same shapes, batch, dtype, weights
and allocator settings; warm-up calls are not timed; times are medians of the timed reps, taken
interleaved so that a busy spell on the machine hits both sides alike. "% of peak" is counted
matmul FLOPs per second over the fp32 `torch.mm` peak measured at the start of the same run.
Peers (`transformers`) are optional: without them those lines say they were skipped.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Measure the checkout this script sits in, whatever `pip install -e` points at.
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import allocator_note, ensure_allocator_env  # noqa: E402

SECTIONS = ("train", "generation", "decoding", "llama", "beam", "hooks", "options", "memory")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 timed reps instead of 10 (11 for training steps either way) and no torch.compile line "
                             "(about 10-12 minutes on 2 CPU cores)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads on CPU (default: PyTorch's default, one per core)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time (steadier on a shared machine; "
                             "use it with --threads 1 only)")
    parser.add_argument("--markdown", action="store_true", help="also print the results as a markdown table")
    parser.add_argument("--reps", type=int, default=None, help="timed reps per side (default 5 quick, 10 full)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    reexeced = ensure_allocator_env([sys.argv[0], *argv])
    args = parse_args(argv)

    import warnings

    import torch

    import glassformer
    import peak
    from common import Context, use_clock

    # nn.Transformer's eval-mode fast path (used once, for the same-weights check) warns about nested tensors.
    warnings.filterwarnings("ignore", message=".*nested tensor.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    use_clock(args.clock)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available to PyTorch")
    reps = args.reps or (5 if args.quick else 10)
    new_tokens = 200
    started = time.perf_counter()

    kind = "quick" if args.quick else "full"
    print(f"glassformer benchmarks, {datetime.date.today()}, {kind} run, device {args.device}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{cpu_name()}, {os.cpu_count()} cores")
    print(f"glassformer from {Path(glassformer.__file__).parent}")
    print(f"{allocator_note()}{'' if reexeced else ' (NOT applied: GLASSFORMER_BENCH_NO_REEXEC is set)'}")
    if args.clock == "cpu":
        print("clock: process CPU time, not wall time (--clock cpu)")
    print(f"ratio = peer time / glassformer time (> 1: glassformer faster); medians of {reps} timed reps "
          "after 1 untimed warm-up, sides interleaved; fp32 everywhere unless a line says otherwise")
    peak_flops = peak.measure_peak(args.device, reps=reps)
    ctx = Context(device=args.device, quick=args.quick, reps=reps, peak_flops=peak_flops)

    if "train" in args.only:
        import train_step

        train_step.run(ctx)
    if "generation" in args.only:
        import generation

        generation.run(ctx, new_tokens=new_tokens)
    if "decoding" in args.only:
        import decoding

        decoding.run(ctx)
    if "llama" in args.only:
        import llama

        llama.run(ctx, new_tokens=new_tokens)
    if "beam" in args.only:
        import beam

        beam.run(ctx)
    if "hooks" in args.only:
        import hooks_overhead

        hooks_overhead.run(ctx)
    if "options" in args.only:
        import options

        options.run(ctx)
    if "memory" in args.only:
        import memory

        memory.run(ctx)
    end_peak = peak.measure_peak(args.device, reps=reps,
                                 out=lambda s: print(s.replace("GFLOP/s (", "GFLOP/s at the end (")))
    if end_peak > 1.15 * peak_flops or end_peak < 0.85 * peak_flops:
        print(f"note: the matmul peak moved by {end_peak / peak_flops - 1:+.0%} during the run (a busy machine); "
              "the % of peak figures use the first measurement")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.markdown:
        from common import markdown_table

        print()
        print(markdown_table(ctx.lines, ctx.memory, peak_flops))


if __name__ == "__main__":
    main(sys.argv[1:])
