"""Your own data with no flags: `glassformer train --data F --kind K --minutes M` beside a baseline.

Four user-like data sets (benchmarks/own_data_sets.py: seeds and vocabularies unlike the built-in
tasks') are written to a temporary folder, and each is trained twice in the same minutes:

- flagless: the CLI with no flag but --minutes (and --out, --no-progress, --examples 0, which
  change nothing that is computed);
- baseline: for the translation-like sets a plain torch.nn.Transformer (2+2 layers, 128 wide,
  Adam with a hand-tuned warm-up and constant rate), for the others the CLI with the settings the
  built-in tasks were tuned with (preset small-*, noam peaking at 2e-3 after 200 steps).

Both are scored on the same held-out test split (the CLI's own split of the file, seed 0).

    python3 benchmarks/own_data.py                  # 4 sets x 2 runs x 4 minutes
    python3 benchmarks/own_data.py --only reorder --minutes 4
    python3 benchmarks/own_data.py --quick          # small sets, seconds each: a smoke test
    python3 benchmarks/own_data.py --write DIR      # only the data files, to train on by hand

Targets (issue 18): flagless within 2 points of the baseline on every set, and >= 95%
exact-match on the reordering set in 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]  # this checkout's glassformer
from own_data_sets import SETS  # noqa: E402
QUICK_EXAMPLES, QUICK_MINUTES = 300, 0.1
# The built-in tasks' tuned settings (cli/train.py TASK_DEFAULTS) with their presets.
TUNED = {"classify": ["--preset", "small-encoder"], "lm": ["--preset", "small-lm"]}
TUNED_OPTIMISER = ["--schedule", "noam", "--lr", "2e-3", "--warmup", "200"]


def load() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def cli_train(data: Path, kind: str, minutes: float, out: Path, extra: list[str]) -> tuple[dict, str]:
    """Train with the CLI in a fresh process; returns the test metrics (in %) and the output."""
    command = [sys.executable, "-m", "glassformer", "train", "--data", str(data), "--kind", kind,
               "--minutes", f"{minutes:g}", "--out", str(out), "--no-progress", "--examples", "0", *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("test"))
    metrics = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)%", line)}
    steps = re.search(r"trained (\d+) steps", done.stdout)
    metrics["steps"] = int(steps.group(1)) if steps else 0
    return metrics, done.stdout


# The baseline: torch.nn.Transformer as a careful user would write it ------------------------------
PAD, START, END, UNKNOWN = 0, 1, 2, 3


class PlainTransformer(nn.Module):
    """Token and learned position embeddings, nn.Transformer (pre-norm), a linear output layer."""

    def __init__(self, vocab: int, d_model: int = 128, max_len: int = 64):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.position = nn.Embedding(max_len, d_model)
        self.transformer = nn.Transformer(d_model, 4, 2, 2, 512, dropout=0.0, batch_first=True, norm_first=True)
        self.out = nn.Linear(d_model, vocab)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])
        return self.embed(ids) * math.sqrt(self.d_model) + self.position(positions)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self._embed(source), src_key_padding_mask=source == PAD)

    def decode(self, memory: torch.Tensor, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(target_in.shape[1])
        hidden = self.transformer.decoder(self._embed(target_in), memory, tgt_mask=mask, tgt_is_causal=True,
                                          memory_key_padding_mask=source == PAD)
        return self.out(hidden)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows])


def baseline_seq2seq(data: Path, minutes: float, seed: int = 0) -> dict:
    """Train PlainTransformer for `minutes` on the CLI's training split; exact match on its test split."""
    from glassformer.data import read_examples, split_examples

    torch.manual_seed(seed)
    splits = split_examples(read_examples(str(data), "seq2seq"), seed)
    words = sorted({w for e in splits.train for w in (e.source + " " + e.target).split()})
    ids = {w: i + 4 for i, w in enumerate(words)}
    encode = lambda text: [ids.get(w, UNKNOWN) for w in text.split()]  # noqa: E731
    train = [(encode(e.source) + [END], [START] + encode(e.target) + [END]) for e in splits.train]
    model = PlainTransformer(len(words) + 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=0.1)
    generator = torch.Generator().manual_seed(seed)
    step, start = 0, time.perf_counter()
    while time.perf_counter() - start < minutes * 60:
        step += 1
        for group in optimizer.param_groups:  # hand-tuned: 100 warm-up steps, then a constant 1e-3
            group["lr"] = 1e-3 * min(1.0, step / 100)
        batch = [train[i] for i in torch.randint(len(train), (64,), generator=generator).tolist()]
        source, target = _pad([s for s, _ in batch]), _pad([t for _, t in batch])
        model.train()
        logits = model.decode(model.encode(source), source, target[:, :-1])
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    exact = 0
    with torch.no_grad():
        for first in range(0, len(splits.test), 100):
            chunk = splits.test[first:first + 100]
            source = _pad([encode(e.source) + [END] for e in chunk])
            memory = model.encode(source)
            out = torch.full((len(chunk), 1), START)
            for _ in range(max(len(e.target.split()) for e in chunk) + 5):
                out = torch.cat([out, model.decode(memory, source, out)[:, -1:].argmax(-1)], dim=1)
            for row, example in zip(out.tolist(), chunk):
                row = row[1:] + [END]
                exact += row[:row.index(END)] == encode(example.target)
    return {"exact_match": 100 * exact / len(splits.test), "steps": step}


def run_set(name: str, folder: Path, minutes: float, quick: bool) -> dict:
    kind, make, n, metric = SETS[name]
    data = folder / f"{name}.txt"
    data.write_text("\n".join(make(QUICK_EXAMPLES if quick else n)) + "\n", encoding="utf-8")
    loads = [load()]
    flagless, output = cli_train(data, kind, minutes, folder / f"{name}-flagless", [])
    loads.append(load())
    if kind == "seq2seq":
        torch.set_num_threads(1)  # as the CLI trains a model this small
        baseline = baseline_seq2seq(data, minutes)
        how = "nn.Transformer 2+2x128, Adam 1e-3, 100 warm-up steps"
    else:
        baseline, _ = cli_train(data, kind, minutes, folder / f"{name}-tuned", TUNED[kind] + TUNED_OPTIMISER)
        how = " ".join(TUNED[kind] + TUNED_OPTIMISER)
    loads.append(load())
    chosen = [line for line in output.splitlines() if re.match(r"(preset|batch size|lr|schedule) ", line)]
    return {"set": name, "metric": metric, "flagless": flagless[metric], "baseline": baseline[metric],
            "flagless_steps": flagless["steps"], "baseline_steps": baseline["steps"], "baseline_is": how,
            "load": sum(loads) / len(loads), "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training minutes per run (default 4)")
    parser.add_argument("--only", choices=sorted(SETS), help="one data set")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EXAMPLES} examples a set and {QUICK_MINUTES} minutes a run: a smoke test")
    parser.add_argument("--write", metavar="DIR", help="only write the data sets' files into DIR (NAME.txt)")
    args = parser.parse_args()
    if args.write:
        Path(args.write).mkdir(parents=True, exist_ok=True)
        for name, (kind, make, n, _) in SETS.items():
            (Path(args.write) / f"{name}.txt").write_text("\n".join(make(n)) + "\n", encoding="utf-8")
            print(f"{args.write}/{name}.txt: {n:,} examples for --kind {kind}")
        return
    minutes = QUICK_MINUTES if args.quick else args.minutes
    names = [args.only] if args.only else list(SETS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="own-data-") as folder:
        for name in names:
            row = run_set(name, Path(folder), minutes, args.quick)
            rows.append(row)
            print(f"{name}: " + "; ".join(row["chosen"]), flush=True)
            print(f"  flagless {row['flagless']:.1f}% ({row['flagless_steps']} steps), baseline {row['baseline']:.1f}% "
                  f"({row['baseline_steps']} steps: {row['baseline_is']}), load {row['load']:.1f}", flush=True)
    cores = os.cpu_count()
    print(f"\n{minutes:g} minutes a run, {cores} cores, {torch.__version__}")
    print(f"{'set':10} {'metric':15} {'flagless':>9} {'baseline':>9} {'diff':>6} {'load':>5}")
    for r in rows:
        print(f"{r['set']:10} {r['metric']:15} {r['flagless']:8.1f}% {r['baseline']:8.1f}% "
              f"{r['flagless'] - r['baseline']:+6.1f} {r['load']:5.1f}")
    print("\n| set | metric | flagless | baseline | difference | steps (flagless / baseline) | load average |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['metric']} | {r['flagless']:.1f}% | {r['baseline']:.1f}% | "
              f"{r['flagless'] - r['baseline']:+.1f} | {r['flagless_steps']:,} / {r['baseline_steps']:,} | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
