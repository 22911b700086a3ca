"""Training under torchrun (2 CPU processes, gloo) equals one process with the same global batch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from glassformer.train.checkpoint import latest_checkpoint

pytestmark = pytest.mark.slow

TASK_ARGS = {
    "seq2seq": ["--task", "copy", "--preset", "tiny-seq2seq"],
    "lm": ["--task", "grammar-lm", "--preset", "tiny-lm"],
}
# Adam's eps is raised from 1e-9 to 1e-6: the attention key biases have an exactly-zero gradient
# in exact arithmetic (softmax ignores a constant added to every score of a query), so they see
# only rounding noise, which differs with the batch's padded shape; with eps 1e-9 Adam turns that
# noise into full-size steps. With 1e-6 noise moves nothing and real gradients are unaffected.
COMMON = ["--batch-size", "8", "--dropout", "0", "--eval-every", "1000", "--checkpoint-every", "1000",
          "--log-every", "1", "--eval-examples", "4", "--examples", "0", "--no-progress", "--lr", "1e-3",
          "--warmup", "2", "--eps", "1e-6"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _train(out, processes, *args, check=True):
    if processes == 1:
        command = [sys.executable, "-m", "glassformer", "train"]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   f"--master_port={_free_port()}", "-m", "glassformer", "train"]
    result = subprocess.run([*command, "--out", str(out), *args], capture_output=True, text=True, env=_env(),
                            timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _weights(run):
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _losses(run):
    return [r["loss"] for r in map(json.loads, open(run / "metrics.jsonl")) if "lr" in r]


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, kind):
    _train(tmp_path / "one", 1, *TASK_ARGS[kind], *COMMON, "--steps", "5", "--eval-every", "5")
    result = _train(tmp_path / "two", 2, *TASK_ARGS[kind], *COMMON, "--steps", "5", "--eval-every", "5")
    assert "global batch 8 = 4 per process x 2 processes" in result.stdout
    # Only the first process prints: the report, and the validation line that the second also printed once.
    assert result.stdout.count("trained 5 steps") == 1 and result.stdout.count("step 5: ") == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)) and result.stderr.count("Traceback") == 0
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) <= 1e-5


def test_checkpoints_resume_across_world_sizes(tmp_path):
    args = [*TASK_ARGS["lm"], *COMMON]
    _train(tmp_path / "whole", 1, *args, "--steps", "6")
    _train(tmp_path / "two_then_one", 2, *args, "--steps", "3")
    _train(tmp_path / "two_then_one", 1, "--resume", "--steps", "6", "--no-progress", "--examples", "0")
    _train(tmp_path / "one_then_two", 1, *args, "--steps", "3")
    _train(tmp_path / "one_then_two", 2, "--resume", "--steps", "6", "--no-progress", "--examples", "0")
    whole = _weights(tmp_path / "whole")
    for name in ("two_then_one", "one_then_two"):
        assert _max_diff(whole, _weights(tmp_path / name)) <= 1e-5
        assert _losses(tmp_path / name) == pytest.approx(_losses(tmp_path / "whole"), abs=1e-5)


def test_fsdp_matches_ddp(tmp_path):
    args = [*TASK_ARGS["seq2seq"], *COMMON, "--steps", "4"]
    _train(tmp_path / "ddp", 2, *args)
    result = _train(tmp_path / "fsdp", 2, *args, "--fsdp")
    assert "trained 4 steps" in result.stdout
    assert _max_diff(_weights(tmp_path / "ddp"), _weights(tmp_path / "fsdp")) <= 1e-4
    # The sharded run's weights load as one ordinary model folder.
    from glassformer.run_folder import load_run

    assert load_run(tmp_path / "fsdp").kind == "seq2seq"


def test_a_dead_process_makes_the_other_stop_with_a_clear_error(tmp_path):
    port = _free_port()
    out = tmp_path / "run"
    args = [sys.executable, "-m", "glassformer", "train", "--out", str(out), *TASK_ARGS["lm"], *COMMON,
            "--steps", "100000", "--dist-timeout", "20"]
    procs = []
    for rank in range(2):
        env = dict(_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.time() + 120
        while not ((out / "metrics.jsonl").exists() and len(_losses(out)) >= 3):
            assert time.time() < deadline, "training did not start"
            assert procs[0].poll() is None, procs[0].communicate()[1][-2000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        _, err = procs[0].communicate(timeout=90)
        assert time.time() - killed_at < 60
        assert procs[0].returncode == 1
        lines = [line for line in err.splitlines() if line.startswith("glassformer train: error:")]
        assert lines and "process 0 of 2 lost contact with the others" in lines[0], err[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
