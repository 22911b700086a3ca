"""Settings chosen from the user's data, the flags that override them, and --paper."""

import pytest

from glassformer.cli.main import build_parser
from glassformer.cli.train import config_from_args
from glassformer.train import auto
from glassformer.train.auto import DataSummary
from glassformer.train.budget import schedule_for
from glassformer.train.schedule import noam
from glassformer.train.config import TrainConfig

ALL = ["preset", "batch_size", "lr", "warmup", "decay"]


def _config(*flags) -> TrainConfig:
    args = build_parser().parse_args(["train", *flags])
    return config_from_args(args)


def _lines(config: TrainConfig, data: DataSummary, d_model=None) -> list[str]:
    return [choice.line() for choice in auto.apply(config, data, d_model)]


def test_a_small_data_set_gets_the_small_preset_batch_and_its_rate():
    config = TrainConfig(kind="seq2seq", steps=400, schedule="cosine", auto=ALL)
    lines = _lines(config, DataSummary("seq2seq", 450, 212, 4, 15))
    assert lines == [
        "preset tiny-seq2seq: 450 pairs, vocabulary 212, lengths 4-15 (under 1,000 examples: the smaller model)",
        "batch size 16: 450 training examples",
        "lr 0.003: peak for d_model 64, warm-up then cosine decay to a tenth of it",
        "schedule cosine: warm-up 20 steps, decay to 0.0003 at step 400: fitted to --steps 400",
    ]
    assert (config.preset, config.batch_size, config.lr, config.warmup, config.decay_steps) == ("tiny-seq2seq", 16, 3e-3, 20, 400)
    assert config.min_lr == pytest.approx(3e-4)


def test_a_larger_data_set_gets_the_larger_preset_and_batch():
    config = TrainConfig(kind="classify", minutes=4.0, schedule="cosine", auto=ALL)
    lines = _lines(config, DataSummary("classify", 4000, 90, 6, 20))
    assert lines[:3] == ["preset small-encoder: 4,000 labelled texts, vocabulary 90, lengths 6-20",
                         "batch size 64: 4,000 training examples",
                         "lr 0.002: peak for d_model 128, warm-up then cosine decay to a tenth of it"]
    assert lines[3] == ("schedule cosine: warm-up and decay to 0.0002 fitted to --minutes 4, the steps estimated from "
                        "the measured step time as training goes")
    assert (config.preset, config.batch_size, config.lr, config.decay_steps) == ("small-encoder", 64, 2e-3, None)
    assert auto.choose_batch_size(DataSummary("lm", 1999, 50, 1, 9)).value == 32


def test_flagless_own_data_chooses_everything():
    config = _config("--data", "f.tsv", "--kind", "seq2seq")
    assert config.auto == ALL and config.schedule == "cosine"


def test_a_given_flag_wins_and_says_given():
    config = _config("--data", "f.tsv", "--kind", "seq2seq", "--lr", "1e-3", "--batch-size", "8", "--steps", "200")
    assert config.auto == ["preset", "warmup", "decay"]
    lines = _lines(config, DataSummary("seq2seq", 4000, 212, 4, 15))
    assert lines[1:3] == ["batch size 8: (given)", "lr 0.001: (given)"]
    assert (config.batch_size, config.lr, config.warmup, config.decay_steps) == (8, 1e-3, 10, 200)
    warmup = _config("--data", "f.tsv", "--kind", "seq2seq", "--warmup", "77", "--steps", "500")
    assert "warmup" not in warmup.auto
    assert _lines(warmup, DataSummary("seq2seq", 4000, 212, 4, 15))[3] == \
        "schedule cosine: warm-up 77 steps (given), decay to 0.0002 at step 500: fitted to --steps 500"
    assert _config("--data", "f.tsv", "--kind", "lm", "--schedule", "constant").auto == ["preset", "batch_size", "lr", "warmup"]


def test_paper_equals_its_explicit_flags_and_the_noam_schedule_behaves_as_before():
    paper = _config("--data", "f.tsv", "--kind", "seq2seq", "--paper")
    explicit = _config("--data", "f.tsv", "--kind", "seq2seq", "--schedule", "noam", "--warmup", "4000", "--beta1", "0.9",
                       "--beta2", "0.98", "--eps", "1e-9", "--label-smoothing", "0.1")
    # Both leave the schedule alone (noam at the d_model^-0.5 scale, warm-up 4000); the model and
    # batch are still chosen from the data.
    assert paper.to_dict() == explicit.to_dict()
    assert paper.auto == ["preset", "batch_size"]
    assert (paper.schedule, paper.warmup, paper.lr, paper.beta2, paper.eps) == ("noam", 4000, None, 0.98, 1e-9)
    lines = _lines(explicit, DataSummary("seq2seq", 4000, 212, 4, 15))
    assert lines[2:] == ["lr the paper's d_model^-0.5 scale: (given)", "schedule noam: the paper's, warm-up 4,000 steps (given)"]
    schedule = schedule_for(explicit, 128)
    assert [schedule.lr(s) for s in (1, 2676, 4000, 9000)] == [noam(s, 128, 4000) for s in (1, 2676, 4000, 9000)]
    # --paper on a built-in task replaces its tuned rate too; a flag beside it wins.
    task = _config("--task", "copy", "--paper", "--warmup", "100")
    assert (task.schedule, task.warmup, task.lr, task.auto) == ("noam", 100, None, [])


def test_built_in_tasks_keep_their_tuned_settings():
    config = _config("--task", "toy-translation")
    assert (config.auto, config.schedule, config.lr, config.warmup, config.steps) == ([], "noam", 2e-3, 200, 1000)
