"""Training on a real-sized corpus: preparation throughput, time to the first step, peak memory, evaluation time.

Generates a seeded corpus of the asked sizes (no download: lines of 4-30 words drawn from a
3,000-word vocabulary with Zipf frequencies) and, for each, in a fresh cache folder:
  - `glassformer prepare` with the word tokenizer and with a BPE of 8,000: total seconds, the
    encoding part in MB/s, beside the `tokenizers` library's own `encode_batch` over the same
    lines with the same tokenizer (word: its WordLevel model with the word pattern);
  - `glassformer train --data FILE --kind lm --preset tiny-lm` on the prepared corpus: seconds
    from the process start to the end of the first training step, seconds per validation,
    peak RSS of the process after 20 steps and one validation.
Each measurement runs in its own process so its peak RSS is its own.

    python3 benchmarks/data_scale.py --sizes 100,1000 [--dir /tmp/glassformer-data-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOCAB_WORDS = 3000


def generate(path: Path, megabytes: int, seed: int = 0) -> None:
    """Write about `megabytes` MB of seeded text lines to path (reused when already there at that size)."""
    target = megabytes * 1_000_000
    if path.is_file() and abs(path.stat().st_size - target) < 1_000_000:
        return
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(VOCAB_WORDS)]
    words[:6] = ["the", "a", "of", "and", "didn't", "naïve"]
    zipf = 1.0 / np.arange(1, VOCAB_WORDS + 1)
    zipf /= zipf.sum()
    punctuation = np.array([" .", " ,", " !", " ?", ""])
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            n = 20_000
            lengths = rng.integers(4, 31, n)
            ids = rng.choice(VOCAB_WORDS, int(lengths.sum()), p=zipf)
            ends = np.cumsum(lengths)
            table = np.array(words, dtype=object)[ids]
            lines = [" ".join(table[e - k : e]) + punctuation[rng.integers(0, 5)] for e, k in zip(ends, lengths)]
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))


_CHILD = r"""
import json, resource, sys, time
start = time.perf_counter()
sys.path.insert(0, {root!r})
task = json.loads(sys.argv[1])
out = {{}}
if task["what"] == "prepare":
    import contextlib, io
    from glassformer.cli import main
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["prepare", "--data", task["data"], "--no-progress", "--json", "--tokenizer", task["tokenizer"],
                     *task.get("extra", [])]) == 0
    out.update(json.loads(buffer.getvalue()))
elif task["what"] == "reference":
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from glassformer.data.lines import line_blocks
    from glassformer.text import load_tokenizer
    tok = load_tokenizer(task["tokenizer"])
    if tok.kind == "word":
        hf = Tokenizer(models.WordLevel({{t: i for i, t in enumerate(tok.tokens)}}, unk_token="<unk>"))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\p{{L}}\p{{N}}_]+(?:'[\p{{L}}\p{{N}}_]+)*|[^\p{{L}}\p{{N}}_\s]"),
                                                behavior="removed", invert=True)
    else:
        hf = tok.hf_tokenizer
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    for lines, _ in line_blocks(task["data"]):
        n += sum(len(e.ids) for e in hf.encode_batch_fast(lines, add_special_tokens=False))
    out.update(seconds=time.perf_counter() - t0, encode_cpu_s=time.process_time() - c0, tokens=n)
elif task["what"] == "train":
    from glassformer.train.config import TrainConfig
    from glassformer.train.build import build_trainer
    config = TrainConfig(data=task["data"], kind="lm", preset="tiny-lm", steps=20, batch_size=64, seed=0,
                         eval_every=1000, log_every=1000, checkpoint_every=1000, **task.get("config", {{}}))
    trainer = build_trainer(config, task["out"], log=lambda line: None, progress=False)
    trainer.train_step()
    out["first_step_s"] = time.perf_counter() - start
    out["first_step_cpu_s"] = time.process_time()
    t0 = time.perf_counter()
    for _ in range(19):
        trainer.train_step()
    out["step_s"] = (time.perf_counter() - t0) / 19
    t0 = time.perf_counter()
    c0 = time.process_time()
    trainer.validate("valid")
    out["eval_s"] = time.perf_counter() - t0
    out["eval_cpu_s"] = time.process_time() - c0
    out["eval_examples"] = len(trainer.encoded["valid"])
    out["valid_examples"] = trainer.held_out_sizes["valid"]
usage = resource.getrusage(resource.RUSAGE_SELF)
out["peak_rss_mb"] = usage.ru_maxrss / 1024
out["cpu_s"] = usage.ru_utime + usage.ru_stime
out["process_s"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""


def child(task: dict, cache: Path) -> dict:
    """Run one measurement in a fresh process; its result and its own peak RSS."""
    env = {**os.environ, "GLASSFORMER_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD.format(root=str(ROOT)), json.dumps(task)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{task['what']} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "wall_s": time.perf_counter() - started}


TOKENIZER_SETTINGS = {"word": [], "bpe": ["--vocab-size", "8000"]}


def forget(cache: Path, tokenizers: tuple[str, ...]) -> None:
    """Remove what earlier runs prepared with these tokenizers, and the line counts and splits, so that
    preparing is measured from scratch; keep the other tokenizers' stores (the training row reads word's)."""
    for folder in cache.glob("prepared/*"):
        for file in [folder / "source.json", *folder.glob("split-*.npz"),
                     *(f for name in tokenizers for f in folder.glob(f"tokenizer-{name}-*.json"))]:
            file.unlink(missing_ok=True)
        for store in folder.glob("tokens-*"):
            meta = store / "meta.json"
            if not meta.is_file() or json.loads(meta.read_text()).get("tokenizer_kind") in tokenizers:
                subprocess.run(["rm", "-rf", str(store)], check=True)


def measure(size: int, folder: Path, train_only: bool = False, tokenizers: tuple[str, ...] = ("word", "bpe"),
            train: bool = True) -> Iterator[str]:
    """The table's rows for one corpus size, each as soon as it is measured."""
    data = folder / f"corpus-{size}mb.txt"
    t0 = time.perf_counter()
    generate(data, size)
    mb = data.stat().st_size / 1e6
    yield (f"corpus {data.name}: {mb:,.0f} MB, {sum(1 for _ in open(data, 'rb')):,} lines "
           f"(generated in {time.perf_counter() - t0:.0f} s)")
    cache = folder / f"cache-{size}mb"
    if not train_only:
        forget(cache, tokenizers)
    for tokenizer, extra in () if train_only else ((name, TOKENIZER_SETTINGS[name]) for name in tokenizers):
        first = child({"what": "prepare", "data": str(data), "tokenizer": tokenizer, "extra": extra}, cache)
        again = child({"what": "prepare", "data": str(data), "tokenizer": tokenizer, "extra": extra}, cache)
        spec = f"{tokenizer}-v{extra[1] if extra else None}-cased-seed0"
        tok_file = next(cache.glob(f"prepared/*/tokenizer-{spec}.json"))
        ref = child({"what": "reference", "data": str(data), "tokenizer": str(tok_file)}, cache)
        ours = first["encode_seconds"]
        yield (
            f"  prepare {tokenizer:>4}: {first['seconds']:6.1f} s in all (split, tokenizer, tokens; {first['cpu_s']:.0f} s "
            f"CPU), peak RSS {first['peak_rss_mb']:,.0f} MB; tokens {ours:6.1f} s = {mb / ours:5.1f} MB/s, tokenizers' "
            f"encode_batch {ref['seconds']:6.1f} s = {mb / ref['seconds']:5.1f} MB/s ({ref['encode_cpu_s']:.0f} s CPU) "
            f"(ratio {ours / ref['seconds']:.2f}); {first['tokens']:,} tokens as {first['dtype']}; "
            f"again (cached, checked) {again['seconds']:.1f} s"
        )
    if not train:
        return
    train = child({"what": "train", "data": str(data), "out": str(folder / f"run-{size}mb")}, cache)
    subprocess.run(["rm", "-rf", str(folder / f"run-{size}mb")], check=True)
    yield (
        f"  train tiny-lm on the prepared corpus: first step done {train['first_step_s']:.1f} s after the process "
        f"started ({train['first_step_cpu_s']:.1f} s CPU); {train['step_s']:.2f} s/step; validation "
        f"{train['eval_s']:.1f} s ({train['eval_cpu_s']:.1f} s CPU) on {train['eval_examples']:,} of "
        f"{train['valid_examples']:,} held-out lines; peak RSS {train['peak_rss_mb']:,.0f} MB; "
        f"{train['cpu_s']:.0f} s CPU in {train['process_s']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="corpus sizes in MB, comma-separated")
    parser.add_argument("--dir", default="/tmp/glassformer-data-scale", help="where corpora and caches go")
    parser.add_argument("--train-only", action="store_true", help="only the training row, on corpora prepared before")
    parser.add_argument("--tokenizers", default="word,bpe", help="which tokenizers' preparation to measure (word, bpe)")
    parser.add_argument("--no-train", action="store_true", help="no training row")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")
    for size in (int(s) for s in args.sizes.split(",")):
        for row in measure(size, folder, args.train_only, tuple(args.tokenizers.split(",")), not args.no_train):
            print(row, flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
