"""Prepared corpora of seq2seq, classify, tag and qa files: the same splits, tokenizers, labels, ids and
batches as reading the file into memory; prepared once, again when the file changes or a column is
damaged; --resume continues bit for bit; batches bucketed by length are fixed by the seed."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from glassformer.cli import main
from glassformer.data import split_examples
from glassformer.data.prepared import open_store
from glassformer.errors import DataError
from glassformer.framing import Framing
from glassformer.tasks import KINDS
from glassformer.train import corpus as corpus_module
from glassformer.train.batches import BUCKET_BATCHES, BatchOrder
from glassformer.train.checkpoint import latest_checkpoint
from glassformer.train.corpus import load_corpus
from glassformer.train.setup import build_tokenizers, label_set
from glassformer.train.config import TrainConfig

WORDS = "the a cat dog sat ran on mat hat big small red didn't Été naïve , . !".split()
TYPES = ("PER", "LOC")


def _sentence(rng, low=1, high=9):
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def write_kind(path, kind, n=90, seed=0):
    """A small file of `kind` (a different seed, different content: the session's cache is keyed by it)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = _sentence(rng)
        if kind == "seq2seq":
            lines.append(" ".join(words) + "\t" + " ".join(reversed(words + _sentence(rng, 0, 3))))
        elif kind == "classify":
            lines.append(rng.choice(["pos", "neg", "mixed"]) + "\t" + " ".join(words))
        elif kind == "tag":
            tags, inside = [], None
            for _ in words:
                inside = rng.choice([None, *TYPES]) if inside is None or rng.random() < 0.5 else inside
                tags.append("O" if inside is None else ("I-" if tags and tags[-1][2:] == inside else "B-") + inside)
            lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
        else:
            context = words + _sentence(rng, 2, 30)
            start = rng.randrange(len(context))
            text = " ".join(context)
            answer = " ".join(context[start : start + rng.randint(1, 3)])
            offset = len(" ".join(context[:start])) + (1 if start else 0)
            lines.append(json.dumps({"context": text, "question": " ".join(_sentence(rng)) + " ?",
                                     "answer_start": offset, "answer_text": answer}))
        if i == 5:
            lines.append("")  # blank lines are skipped
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind, tokenizer, shared", [("seq2seq", "word", False), ("seq2seq", "bpe", True),
                                                     ("classify", "wordpiece", True), ("tag", "word", True),
                                                     ("qa", "char", True)])
def test_a_prepared_corpus_gives_the_ids_labels_and_batches_of_the_in_memory_path(tmp_path, kind, tokenizer, shared):
    path = write_kind(tmp_path / "data", kind, seed=1)
    config = TrainConfig(data=str(path), kind=kind, tokenizer=tokenizer, vocab_size=60 if tokenizer != "word" else None,
                         shared_vocab=shared, seed=4)
    splits = split_examples(KINDS[kind].read(path), seed=4)
    source, target = build_tokenizers(config, kind, splits)
    labels = label_set(kind, splits)
    corpus = load_corpus(str(path), kind, 4, Framing(), tokenizer_kind=tokenizer, vocab_size=config.vocab_size,
                         shared_vocab=shared, log=lambda s: None)
    assert corpus.tokenizer.to_dict() == source.to_dict() and corpus.target.to_dict() == target.to_dict()
    assert (corpus.target is corpus.tokenizer) == (source is target) and corpus.labels == labels
    whole = KINDS[kind].encode(splits.train, source, target, labels, 10**6, Framing())
    max_len = int(np.median(KINDS[kind].row_lengths(whole)))  # some examples skipped (qa: contexts cut, answers lost)
    corpus.open(max_len)
    for name in ("train", "valid", "test"):
        memory = KINDS[kind].encode(getattr(splits, name), source, target, labels, max_len, Framing())
        prepared = corpus.encoded(name, max_len)
        assert len(prepared) == len(memory) and prepared.skipped == memory.skipped
        assert list(prepared.inputs) == memory.inputs and list(prepared.targets) == memory.targets
        assert (prepared.segments is None) == (memory.segments is None)
        if memory.segments is not None:
            assert list(prepared.segments) == memory.segments
        assert KINDS[kind].row_lengths(prepared).tolist() == KINDS[kind].row_lengths(memory).tolist()
        if name != "train":
            assert list(corpus.examples(name)) == getattr(splits, name)
    memory = KINDS[kind].encode(splits.train, source, target, labels, max_len, Framing())
    prepared = corpus.encoded("train", max_len)
    assert memory.skipped > 0
    orders = [BatchOrder(len(e), 8, 3, lengths=KINDS[kind].row_lengths(e)) for e in (memory, prepared)]
    for _ in range(12):
        indices = orders[0].next()
        assert orders[1].next() == indices
        a = KINDS[kind].batch(memory, indices, source, target, Framing())
        b = KINDS[kind].batch(prepared, indices, source, target, Framing())
        assert a.inputs.keys() == b.inputs.keys() and all(torch.equal(a.inputs[k], b.inputs[k]) for k in a.inputs)
        assert torch.equal(a.targets, b.targets) and a.n_targets == b.n_targets


def test_bucketed_batches_keep_each_epochs_examples_and_are_fixed_by_the_seed():
    lengths = np.random.default_rng(0).integers(1, 40, 1003)
    plain, bucketed = BatchOrder(1003, 4, 7), BatchOrder(1003, 4, 7, lengths=lengths)
    per_epoch = 1003 // 4
    for epoch in range(2):
        a = [plain.next() for _ in range(per_epoch)]
        b = [bucketed.next() for _ in range(per_epoch)]
        assert sorted(sum(a, [])) == sorted(sum(b, []))  # the same 1,000 examples, grouped otherwise
        padded = lambda batches: sum(len(x) * max(lengths[x]) for x in batches)  # noqa: E731
        assert padded(b) < 0.75 * padded(a)  # measured: 0.52 of the plain order's padded tokens
        # within a batch the lengths differ little: 200 examples sorted in each run of BUCKET_BATCHES batches
        assert np.mean([np.ptp(lengths[x]) for x in b]) <= 2 and BUCKET_BATCHES == 50
    again = BatchOrder(1003, 4, 7, lengths=lengths)
    again.load_state({"epoch": 1, "position": 17})
    fresh = BatchOrder(1003, 4, 7, lengths=lengths)
    for _ in range(per_epoch + 17):
        fresh.next()
    assert [again.next() for _ in range(5)] == [fresh.next() for _ in range(5)]
    rank1 = BatchOrder(1003, 4, 7, rank=1, world=2, lengths=lengths)
    whole = BatchOrder(1003, 4, 7, lengths=lengths).next()
    assert rank1.next() == whole[1::2]
    assert BatchOrder(1003, 4, 8, lengths=lengths).next() != whole


def _order_by_one_sort(n, batch_size, seed, lengths, epoch=0):
    """An epoch's bucketed batches as BatchOrder made them before its sort ran in numpy: one stable torch
    sort of the key (run, length) over all the epoch's examples."""
    generator = lambda salt=0: torch.Generator().manual_seed(seed * 1_000_003 + epoch + salt)  # noqa: E731
    perm, width = torch.randperm(n, generator=generator()), min(batch_size, n)
    per_epoch = max(1, n // batch_size)
    used, lengths = perm[: per_epoch * width], torch.as_tensor(lengths, dtype=torch.int64)
    key = torch.arange(len(used)) // (width * BUCKET_BATCHES) * (int(lengths.max()) + 1) + lengths[used]
    batches = used[torch.sort(key, stable=True).indices].view(per_epoch, width)
    return batches[torch.randperm(per_epoch, generator=generator(salt=500_009))]


@pytest.mark.parametrize("n,batch_size,high", [(5003, 8, 40), (4000, 16, 300), (7001, 32, 70_000), (7, 16, 5)])
def test_bucketed_batches_are_those_of_one_stable_sort_of_run_and_length(n, batch_size, high):
    # lengths below 256, 65,536 and above (uint8, uint16, int64 keys); full runs of 50 batches and a
    # shorter last one; fewer examples than a batch
    lengths = np.random.default_rng(n).integers(0, high, n)
    order = BatchOrder(n, batch_size, 11, lengths=lengths)
    for epoch in range(2):
        assert torch.equal(order.epoch_batches(), _order_by_one_sort(n, batch_size, 11, lengths, epoch))
        order.load_state({"epoch": epoch + 1, "position": 0})


def test_a_changed_file_is_prepared_again_and_a_damaged_column_is_found_and_rebuilt(tmp_path, capsys, monkeypatch):
    path = write_kind(tmp_path / "pairs.tsv", "seq2seq", seed=2)
    built = []
    real = corpus_module.build_store
    monkeypatch.setattr(corpus_module, "build_store", lambda *a, **k: built.append(1) or real(*a, **k))
    first = load_corpus(str(path), "seq2seq", 0, Framing(), log=lambda s: None).open(30, log=lambda s: None)
    again = load_corpus(str(path), "seq2seq", 0, Framing(), log=lambda s: None).open(30, log=lambda s: None)
    assert len(built) == 1 and again.stores["train"].path == first.stores["train"].path
    store = first.stores["train"]
    expected = np.array(store.columns["targets"][0]).copy()
    targets = store.path / "targets.bin"
    for damage in ("truncate", "flip"):
        data = bytearray(targets.read_bytes())
        if damage == "truncate":
            data = data[:-3]
        else:
            data[4] ^= 0x01
        targets.write_bytes(bytes(data))
        with pytest.raises(DataError, match="truncated or damaged" if damage == "truncate" else "checksum differs"):
            open_store(store.path)
        assert main(["prepare", "--check", str(store.path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "targets.bin" in err and "Traceback" not in err
        said = []
        rebuilt = load_corpus(str(path), "seq2seq", 0, Framing(), log=said.append).open(30, log=said.append)
        assert len(said) == 2 and "targets.bin" in said[0] and "preparing it again" in said[0]
        assert np.array_equal(np.array(rebuilt.stores["train"].columns["targets"][0]), expected)
    assert len(built) == 3
    with open(path, "a", encoding="utf-8") as f:
        f.write("one more\tline\n")
    changed = load_corpus(str(path), "seq2seq", 0, Framing(), log=lambda s: None).open(30, log=lambda s: None)
    assert len(built) == 4 and changed.stores["train"].path != store.path
    assert len(changed.stores["train"]) == len(store) + 1


def test_a_bad_line_is_reported_in_one_line_with_its_number(tmp_path, capsys):
    path = write_kind(tmp_path / "labels.tsv", "classify", seed=3)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[40] = "no tab here"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert main(["train", "--data", str(path), "--kind", "classify", "--steps", "1", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"glassformer train: error: {path}:41: expected 'label<TAB>text' (2 fields), found 1 field\n"


TINY = {"seq2seq": ["--preset", "tiny-seq2seq"], "tag": ["--preset", "tiny-encoder"]}
COMMON = ["--batch-size", "8", "--eval-every", "3", "--checkpoint-every", "3", "--warmup", "2", "--lr", "3e-3",
          "--no-progress", "--examples", "0", "--schedule", "constant", "--eval-examples", "4"]


def _train(path, kind, out, *extra):
    assert main(["train", "--data", str(path), "--kind", kind, "--out", str(out), *TINY[kind], *COMMON, *extra]) == 0
    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


@pytest.mark.parametrize("kind", ["seq2seq", "tag"])
def test_training_on_a_prepared_corpus_equals_memory_and_resumes_bit_for_bit(tmp_path, monkeypatch, capsys, kind):
    path = write_kind(tmp_path / "data", kind, n=60, seed=5)
    straight = _train(path, kind, tmp_path / "straight", "--steps", "4")
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test: "))
    _train(path, kind, tmp_path / "halves", "--steps", "2")
    monkeypatch.setattr(corpus_module, "build_store", lambda *a, **k: pytest.fail("prepared again on --resume"))
    assert main(["train", "--resume", "--out", str(tmp_path / "halves"), "--steps", "4", "--no-progress",
                 "--examples", "0"]) == 0
    resumed = load_file(str(latest_checkpoint(tmp_path / "halves") / "model.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "straight")]) == 0  # the test split, from the same store
    assert capsys.readouterr().out.splitlines()[1] == test_line.removeprefix("test: ")
    monkeypatch.undo()
    import glassformer.train.build as build
    import glassformer.train.setup as setup

    monkeypatch.setattr(setup, "uses_prepared_data", lambda data, kind: False)
    monkeypatch.setattr(build, "uses_prepared_data", lambda data, kind: False)
    memory = _train(path, kind, tmp_path / "memory", "--steps", "4")
    assert all(torch.equal(straight[k], memory[k]) for k in straight)


def test_prepare_command_takes_every_trainable_kind(tmp_path, capsys):
    from glassformer.cli.prepare import _KINDS
    from glassformer.tasks import TRAINABLE_KINDS

    assert set(_KINDS) == set(TRAINABLE_KINDS)
    path = write_kind(tmp_path / "sentences.conll", "tag", n=40, seed=6)
    assert main(["prepare", "--data", str(path), "--kind", "tag", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 40 and report["splits"] == {"train": 36, "valid": 2, "test": 2}
    assert report["cached"] is False and open_store(report["store"]).columns["labels"][0].dtype == np.int16
    assert main(["prepare", "--data", str(path), "--kind", "tag", "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
