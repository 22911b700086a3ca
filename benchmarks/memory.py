"""Peak memory of each side, each measured in a fresh process.

Method (CPU): a child process builds the models exactly as the timed comparison does (both
sides' models, so that both children start alike), hands freed heap back to the OS
(`malloc_trim`), resets the kernel's RSS high-water mark (writing 5 to /proc/self/clear_refs),
runs one side's unit of work twice (a warm-up, then one more: the optimiser state exists from the
first step on), and reports VmHWM minus the RSS just before the work, less the growth of RssFile:
the memory the work needs beyond the weights (activations, gradients, optimiser state, KV cache).
RssFile is the part of the resident set that maps files, here the code of library functions the
work runs for the first time (the first `embedding_bag` call alone maps ~1.7 MB of libtorch); it
is counted apart and printed, the same way for both sides. On CUDA the same with
`torch.cuda.max_memory_allocated`. The child inherits the allocator settings of the parent.

    python benchmarks/memory.py --probe train_step enc-dec:small ours cpu   (what run.py calls)
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (label, module, case) -> the module's maker(case, side, device) builds one side's unit of work.
CASES = [
    ("train step enc-dec small", "train_step", "enc-dec:small"),
    ("train step enc-dec paper-base", "train_step", "enc-dec:paper-base"),
    ("train step GPT-2", "train_step", "gpt2:"),
    ("greedy generation batch 1", "generation", "1"),
    ("beam search", "beam", ""),
]
PEERS = {"train_step": {"enc-dec": "nn.Transformer", "gpt2": "HF GPT-2"}, "generation": "HF generate",
         "beam": "HF generate"}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe(module: str, case: str, side: str, device: str) -> dict:
    """Run in the child: build, reset the peak, work twice, return the growth in MB."""
    import importlib

    import torch

    mod = importlib.import_module(module)
    if module == "train_step":
        kind, _, sub = case.partition(":")
        work = mod.MAKERS[kind](sub, side, device)
    else:
        work = mod.make(case, side, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        work(), work()
        torch.cuda.synchronize()
        return {"mb": (torch.cuda.max_memory_allocated() - before) / 2**20, "method": "cuda"}
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    Path("/proc/self/clear_refs").write_text("5")
    before, files_before = _status_kb("VmRSS"), _status_kb("RssFile")
    work(), work()
    code = _status_kb("RssFile") - files_before
    return {"mb": (_status_kb("VmHWM") - before - code) / 1024, "code_mb": code / 1024, "method": "rss"}


def measure(module: str, case: str, side: str, device: str, threads: int) -> dict | None:
    """Start a child for one side; its probe's result (peak growth "mb", code pages "code_mb" on
    CPU), or None when it failed (printed)."""
    env = {**os.environ, "GLASSFORMER_BENCH_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE / "memory.py"), "--probe", module, case, side, device]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  memory probe {module} {case} {side} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ctx) -> None:
    import torch

    from common import have

    method = ("CUDA max_memory_allocated growth" if ctx.device == "cuda"
              else "peak RSS growth (VmHWM) less newly mapped library code (RssFile)")
    ctx.out(f"peak memory: {method} over the work, fresh process per side, MB; ratio = peer / glassformer")
    for label, module, case in CASES:
        kind = case.partition(":")[0]
        peer = PEERS[module][kind] if isinstance(PEERS[module], dict) else PEERS[module]
        needs_transformers = module != "train_step" or kind == "gpt2"
        if needs_transformers and not have("transformers"):
            ctx.out(f"peak memory, {label}: skipped (transformers is not installed)")
            continue
        sides = [measure(module, case, side, ctx.device, torch.get_num_threads()) for side in ("ours", "peer")]
        if None in sides:
            continue
        ours, theirs = (side["mb"] for side in sides)
        ratio = theirs / ours if ours > 0 else float("nan")
        ctx.memory.append((label, peer, ours, theirs))
        code = ""
        if "code_mb" in sides[0]:
            code = f" (library code mapped: {sides[0]['code_mb']:.1f} MB ours, {sides[1]['code_mb']:.1f} MB {peer})"
        ctx.out(f"peak memory, {label}: glassformer +{ours:,.0f} MB, {peer} +{theirs:,.0f} MB; "
                f"{peer}/glassformer = {ratio:.2f}x{code}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--probe":
        sys.path[:0] = [str(HERE), str(HERE.parent)]
        import warnings

        import torch

        warnings.filterwarnings("ignore")
        torch.set_num_threads(int(os.environ.get("GLASSFORMER_BENCH_THREADS", torch.get_num_threads())))
        print(json.dumps(probe(*sys.argv[2:])))
    else:
        sys.exit(__doc__)
