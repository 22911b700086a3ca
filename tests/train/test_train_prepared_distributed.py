"""Under torchrun (2 CPU processes, gloo) the first process prepares a data file's corpus while the
other waits at a barrier, then both read it: the store is built once, by rank 0, for a new run and
for --resume (when it was damaged in between). About 25 s: three launches of two processes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.test_train_prepared_kinds import write_kind

pytestmark = pytest.mark.slow

# Runs glassformer's CLI with build_store wrapped to note which rank built a store, and when its
# barrier let the others through; everything else is the real code path.
LAUNCHER = """
import os, sys, time
from glassformer.train import corpus, distributed
from glassformer.cli import main

real_build, real_barrier = corpus.build_store, distributed.barrier
def build_store(*args, **kwargs):
    with open(os.environ["GF_EVENTS"], "a") as f:
        f.write(f"build {os.environ['RANK']}\\n")
    time.sleep(1.0)  # a slow preparation: the other process must still wait for it
    return real_build(*args, **kwargs)
corpus.build_store = build_store
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script, events, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", GF_EVENTS=str(events),
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               str(script), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_rank_zero_prepares_while_the_other_waits_then_both_read(tmp_path):
    data = write_kind(tmp_path / "pairs.tsv", "seq2seq", n=60, seed=11)
    script, events = tmp_path / "launch.py", tmp_path / "events.txt"
    script.write_text(LAUNCHER)
    common = ["--no-progress", "--examples", "0", "--eval-every", "1000", "--checkpoint-every", "2"]
    result = _torchrun(script, events, "train", "--data", str(data), "--kind", "seq2seq", "--preset", "tiny-seq2seq",
                       "--batch-size", "8", "--steps", "2", "--out", str(tmp_path / "run"), *common)
    assert "global batch 8 = 4 per process x 2 processes" in result.stdout and "trained 2 steps" in result.stdout
    assert events.read_text() == "build 0\n"  # one store (train, valid and test share the file), built by rank 0
    cache = Path(os.environ["GLASSFORMER_CACHE_DIR"])  # the session's (tests/conftest.py), which torchrun inherits
    store = next(p.parent for p in cache.glob("prepared/*/seq2seq-*/meta.json")
                 if json.loads(p.read_text())["source"] == str(data))
    tokens = store / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-2])  # damaged: --resume prepares it again, once, on rank 0
    result = _torchrun(script, events, "train", "--resume", "--steps", "3", "--out", str(tmp_path / "run"), *common)
    assert "resumed from step 2" in result.stdout and "preparing it again" in result.stdout
    assert events.read_text() == "build 0\nbuild 0\n"
    assert result.stdout.count("preparing it again") == 1 and result.stderr.count("Traceback") == 0
