"""Prepared corpora: the same splits, tokenizer and batches as reading the file into memory, made
once and reused, rebuilt when the file changes or the token file is damaged; --resume from them."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from glassformer.cli import main
from glassformer.data import read_text, split_examples
from glassformer.data.prepared import open_store
from glassformer.errors import DataError
from glassformer.text import train_tokenizer
from glassformer.train import corpus as corpus_module
from glassformer.framing import Framing, sequence_ids
from glassformer.tasks import KINDS
from glassformer.train.checkpoint import latest_checkpoint
from glassformer.train.corpus import load_corpus, sample_positions

WORDS = "the a cat dog sat ran on mat hat big small red didn't Été naïve ΑΣ , . !".split()


def _write_corpus(path, n=300, seed=0):
    """A small corpus; tests take different seeds, since the cache (one per session) is keyed by content."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(n)]
    lines[3] = "  padded line with spaces \r"  # stripped, as read_text strips
    lines[7] = ""  # blank lines are skipped
    lines[11] = "a <mask> in the text"  # the literal <mask> becomes the mask id
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


@pytest.mark.parametrize("kind, vocab, lowercase", [("word", None, False), ("word", 12, True), ("char", None, True),
                                                    ("bpe", 60, False), ("wordpiece", 60, False)])
def test_prepared_corpus_gives_the_same_splits_tokenizer_and_batches_as_memory(tmp_path, kind, vocab, lowercase):
    path = _write_corpus(tmp_path / "corpus.txt")
    examples = read_text(path)
    splits = split_examples(examples, seed=3)
    tokenizer = train_tokenizer(kind, [e.text for e in splits.train], vocab, lowercase)
    corpus = load_corpus(str(path), "lm", 3, Framing(), tokenizer_kind=kind, vocab_size=vocab, lowercase=lowercase, log=lambda s: None)
    assert corpus.tokenizer.to_dict() == tokenizer.to_dict()
    for name in ("train", "valid", "test"):
        memory = KINDS["lm"].encode(getattr(splits, name), tokenizer, tokenizer, [], 10, Framing())
        prepared = corpus.encoded(name, max_len=10)
        assert len(prepared) == len(memory) and prepared.skipped == memory.skipped > 0
        assert [prepared.inputs[i] for i in range(len(prepared))] == memory.inputs
    masked_lm = load_corpus(str(path), "mlm", 3, Framing(), tokenizer=tokenizer, log=lambda s: None).encoded("valid", max_len=10)
    memory = KINDS["mlm"].encode(splits.valid, tokenizer, tokenizer, [], 10, Framing())  # one token shorter at most
    assert [masked_lm.inputs[i] for i in range(len(masked_lm))] == memory.inputs and masked_lm.skipped == memory.skipped
    memory = KINDS["lm"].encode(splits.train, tokenizer, tokenizer, [], 10, Framing())
    indices = [5, 0, 17, 3]
    lm = KINDS["lm"]
    a = lm.batch(memory, indices, tokenizer, tokenizer, Framing())
    b = lm.batch(corpus.encoded("train", 10), indices, tokenizer, tokenizer, Framing())
    assert torch.equal(a.inputs["ids"], b.inputs["ids"]) and torch.equal(a.targets, b.targets)
    assert corpus.stores["train"].tokens.dtype == np.uint16


@pytest.mark.parametrize("kind, vocab", [("word", None), ("bpe", 60)])
def test_a_file_read_in_many_blocks_gives_the_same_token_file_as_in_one(tmp_path, monkeypatch, kind, vocab):
    """The token file is the same, byte for byte, with about one line a block (BPE: lines joined by the end token)."""
    path = _write_corpus(tmp_path / "corpus.txt", n=120, seed=5)
    corpus = load_corpus(str(path), "lm", 0, Framing(), tokenizer_kind=kind, vocab_size=vocab, log=lambda s: None)
    store = corpus.stores["train"]
    one_block = [(store.path / name).read_bytes() for name in ("tokens.bin", "offsets.npy")]
    monkeypatch.setattr(corpus_module, "TEXT_BLOCK_BYTES", 16)  # about a line each (lines of up to ~70 bytes)
    again = corpus_module.build_store(corpus.sources["train"], corpus.encoding())
    assert [(again.path / name).read_bytes() for name in ("tokens.bin", "offsets.npy")] == one_block
    expected = [sequence_ids(corpus.tokenizer, e.text, Framing()) for e in read_text(path)]
    assert [again.example(i) for i in range(len(again))] == expected and len(expected) == 119


def test_a_changed_file_is_prepared_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    path = _write_corpus(tmp_path / "corpus.txt", seed=1)
    built = []
    real = corpus_module.build_store
    monkeypatch.setattr(corpus_module, "build_store", lambda *a, **k: built.append(1) or real(*a, **k))
    first = load_corpus(str(path), "lm", 0, Framing(), log=lambda s: None)
    again = load_corpus(str(path), "lm", 0, Framing(), log=lambda s: None)
    assert len(built) == 1 and again.stores["train"].path == first.stores["train"].path
    with open(path, "a", encoding="utf-8") as f:
        f.write("one more line at the end\n")
    changed = load_corpus(str(path), "lm", 0, Framing(), log=lambda s: None)
    assert len(built) == 2 and changed.stores["train"].path != first.stores["train"].path
    assert len(changed.stores["train"]) == len(first.stores["train"]) + 1


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_token_file_is_detected_in_one_line_and_rebuilt(tmp_path, capsys, damage):
    path = _write_corpus(tmp_path / "corpus.txt", seed=2 if damage == "flip" else 3)
    store = load_corpus(str(path), "lm", 0, Framing(), log=lambda s: None).stores["train"]
    expected = np.array(store.tokens).copy()
    tokens = store.path / "tokens.bin"
    data = bytearray(tokens.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[10] ^= 0xFF
    tokens.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or damaged" if damage == "truncate" else "checksum differs"):
        open_store(store.path)
    assert main(["prepare", "--check", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tokens.bin" in err and "Traceback" not in err
    said = []
    rebuilt = load_corpus(str(path), "lm", 0, Framing(), log=said.append).stores["train"]
    assert len(said) == 2 and "preparing it again" in said[0] and said[1].startswith("tokenizing")
    assert np.array_equal(np.array(rebuilt.tokens), expected)
    assert main(["prepare", "--check", str(store.path)]) == 0


def test_prepare_command_prints_throughput_and_train_then_finds_the_cache(tmp_path, capsys, monkeypatch):
    path = _write_corpus(tmp_path / "corpus.txt", seed=4)
    assert main(["prepare", "--data", str(path), "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 299 and report["splits"] == {"train": 269, "valid": 15, "test": 15}
    assert report["cached"] is False and report["encode_mb_per_s"] > 0
    assert main(["prepare", "--data", str(path), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    monkeypatch.setattr(corpus_module, "build_store", lambda *a, **k: pytest.fail("prepared twice"))
    assert str(load_corpus(str(path), "lm", 0, Framing(), log=lambda s: None).stores["train"].path) == report["store"]


TINY = ["--preset", "tiny-lm", "--batch-size", "8", "--eval-every", "3", "--checkpoint-every", "3", "--warmup", "2",
        "--lr", "3e-3", "--no-progress", "--examples", "0"]


def _train(path, out, *extra):
    assert main(["train", "--data", str(path), "--kind", "lm", "--out", str(out), *TINY, *extra]) == 0
    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", n=120, seed=5)


def test_training_from_a_prepared_corpus_equals_training_from_memory(corpus_file, tmp_path, monkeypatch):
    prepared = _train(corpus_file, tmp_path / "prepared", "--steps", "4")
    import glassformer.train.build as build
    import glassformer.train.setup as setup

    monkeypatch.setattr(setup, "uses_prepared_data", lambda data, kind: False)
    monkeypatch.setattr(build, "uses_prepared_data", lambda data, kind: False)
    memory = _train(corpus_file, tmp_path / "memory", "--steps", "4")
    assert prepared.keys() == memory.keys()
    assert all(torch.equal(prepared[k], memory[k]) for k in prepared)


@pytest.mark.parametrize("pack", [False, True])
def test_resume_from_prepared_data_continues_bit_for_bit(corpus_file, tmp_path, monkeypatch, capsys, pack):
    # A schedule that does not follow --steps: a fitted one keeps the end the run started with, so
    # 3 steps resumed to 6 differ from 6 straight (tests/train/test_train_own_data.py).
    extra = ["--pack"] * pack + ["--schedule", "constant", "--warmup", "2"]
    straight = _train(corpus_file, tmp_path / "straight", "--steps", "6", *extra)
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test: "))
    _train(corpus_file, tmp_path / "halves", "--steps", "3", *extra)
    monkeypatch.setattr(corpus_module, "build_store", lambda *a, **k: pytest.fail("prepared again on --resume"))
    assert main(["train", "--resume", "--out", str(tmp_path / "halves"), "--steps", "6", "--no-progress", "--examples", "0"]) == 0
    resumed = load_file(str(latest_checkpoint(tmp_path / "halves") / "model.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "straight")]) == 0  # the test split, from the same tokens
    assert capsys.readouterr().out.splitlines()[1] == test_line.removeprefix("test: ")


def test_evaluation_sample_is_fixed_capped_and_reported(corpus_file, tmp_path, capsys):
    assert sample_positions(10, None, 0).tolist() == list(range(10))
    assert sample_positions(10, 20, 0).tolist() == list(range(10))
    picked = sample_positions(1000, 7, 5)
    assert len(picked) == 7 and picked.tolist() == sorted(set(picked.tolist())) == sample_positions(1000, 7, 5).tolist()
    _train(corpus_file, tmp_path / "run", "--steps", "3", "--eval-sample", "4")
    out = capsys.readouterr().out
    assert "test (on a fixed sample of 4 of its 6 examples; --eval-sample 0 scores them all):" in out


def test_packed_blocks_are_the_training_lines_laid_end_to_end(corpus_file):
    from glassformer.train.blocks import PackedStream

    corpus = load_corpus(str(corpus_file), "lm", 0, Framing(), log=lambda s: None)
    store, train = corpus.stores["train"], corpus.indices["train"]
    stream = np.concatenate([store.tokens[store.offsets[i] : store.offsets[i + 1]] for i in sorted(train)])
    packed = PackedStream(store, train, block=9)
    assert packed.n_tokens == len(stream)
    for position in (0, 1, 57, len(stream) - 9):
        assert packed.read(position).tolist() == stream[position : position + 9].tolist()
    batch = packed.batch(seed=0, step=3, batch_size=4, rows=[1, 3])
    starts = packed.positions(0, 3, 4)[[1, 3]].tolist()
    assert batch.inputs["ids"].tolist() == [stream[p : p + 8].tolist() for p in starts]
    assert batch.targets.tolist() == [stream[p + 1 : p + 9].tolist() for p in starts] and batch.n_targets == 16
    assert torch.equal(packed.positions(0, 3, 4), packed.positions(0, 3, 4))
    assert not torch.equal(packed.positions(0, 3, 4), packed.positions(0, 4, 4))


def test_pack_is_refused_where_there_is_no_text_file(tmp_path, capsys):
    argv = ["train", "--task", "grammar-lm", "--pack", "--steps", "1", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "--pack is for language models trained on a text file" in capsys.readouterr().err
