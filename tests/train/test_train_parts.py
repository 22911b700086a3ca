"""The trainer's parts: a logger that is silent off the first process, a schedule object, and a
trainer built from ready parts that prints nothing at all on any process but the first."""

import pytest

from glassformer.train import build
from glassformer.train.config import TrainConfig
from glassformer.train.distributed import World
from glassformer.train.log import METRICS_FILE, Logger
from glassformer.train.budget import schedule_for
from glassformer.train.schedule import learning_rate

SENTENCES = ["good fun film", "great happy day", "bad sad film", "awful dull day", "fun great show",
             "dull bad show", "happy good song", "sad awful song"]


@pytest.mark.parametrize("rank", [0, 1])
def test_the_logger_speaks_and_writes_only_on_the_first_process(tmp_path, capsys, rank):
    said = []
    log = Logger(tmp_path, World(rank=rank, size=2).is_main, said.append, progress=True)
    log("hello")
    log.metrics({"step": 1})
    bar = log.bar(total=None, done=0, minutes=None) if rank else None  # rank 0 would draw a real tqdm bar
    if bar is not None:
        bar.write("step 1: loss 2")
        bar.update()
        bar.close()
    written = (tmp_path / METRICS_FILE).read_text().splitlines() if (tmp_path / METRICS_FILE).exists() else []
    assert (said, written, log.progress) == ((["hello"], ['{"step": 1}'], True) if rank == 0 else ([], [], False))
    assert capsys.readouterr() == ("", "")


def test_the_schedule_object_is_the_named_schedule():
    config = TrainConfig(schedule="cosine", warmup=10, lr=3e-3, steps=100, min_lr=1e-4)
    schedule = schedule_for(config, d_model=64)
    assert [schedule.lr(s) for s in (1, 10, 55, 100)] == [learning_rate(s, "cosine", 64, 10, 3e-3, 100, 1e-4)
                                                         for s in (1, 10, 55, 100)]
    assert schedule.lr(10) == pytest.approx(3e-3) and schedule.lr(100) == pytest.approx(1e-4)


def _config(data):
    return TrainConfig(data=str(data), kind="classify", preset="tiny-encoder", steps=2, eval_every=1, log_every=1,
                       checkpoint_every=2, batch_size=4, lr=1e-3, warmup=2)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"{'pos' if i % 2 == 0 else 'neg'}\t{s}\n" for i, s in enumerate(SENTENCES * 3)))
    return path


def test_a_trainer_off_the_first_process_prints_nothing(data, tmp_path, monkeypatch, capsys):
    # The first process writes the run folder; a second one (rank 1, its collectives stubbed: one
    # process plays both) then trains beside it and must print and write nothing of its own.
    said = {0: [], 1: []}
    first = build.build_trainer(_config(data), tmp_path / "run", device="cpu", log=said[0].append, progress=False)
    first.fit()
    assert said[0][0].startswith("training encoder-only") and any(line.startswith("step 2: ") for line in said[0])
    records = (tmp_path / "run" / METRICS_FILE).read_text()
    capsys.readouterr()

    monkeypatch.setattr(build, "init_world", lambda device, timeout: World(rank=1, size=1))
    second = build.build_trainer(_config(data), tmp_path / "run", device="cpu", log=said[1].append, progress=True,
                                 overwrite=True)
    result = second.fit()
    assert result.step == 2 and said[1] == [] and capsys.readouterr() == ("", "")
    assert (tmp_path / "run" / METRICS_FILE).read_text() == records  # only the first process appends
