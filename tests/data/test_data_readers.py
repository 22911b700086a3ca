"""Readers of user files: good files parse, each bad file gets its one-line message."""

import pytest

from glassformer.data import (
    Labeled,
    Pair,
    Text,
    read_labeled,
    read_pairs,
    read_text,
    split_examples,
)
from glassformer.errors import ConfigError, DataError
from glassformer.tasks import read_examples


def write(tmp_path, content: bytes | str, name="data.tsv"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_pairs_parse(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfhello world\thola mundo\r\n\r\n  \nthank you \t gracias\r\n")
    assert read_pairs(path) == [Pair("hello world", "hola mundo"), Pair("thank you", "gracias")]
    assert read_examples(path, "seq2seq") == read_pairs(path)


def test_labeled_parse(tmp_path):
    path = write(tmp_path, "positive\tso good\n\nnegative\tso bad\n")
    assert read_labeled(path) == [Labeled("positive", "so good"), Labeled("negative", "so bad")]
    assert read_examples(path, "classify") == read_labeled(path)


def test_text_parse(tmp_path):
    path = write(tmp_path, "first line\r\n\n   \n second\tline \n", name="lm.txt")
    assert read_text(path) == [Text("first line"), Text("second\tline")]
    assert read_examples(path, "lm") == read_examples(path, "mlm") == read_text(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tb\nc\td\ne\tf\ng\th\ni\tj\nk\tl\nonly one\n", "7: expected 'source<TAB>target' (2 fields), found 1 field"),
        ("a\tb\n\nc\td\te\n", "3: expected 'source<TAB>target' (2 fields), found 3 fields"),
        ("a\tb\n\t target\n", "2: the source field is empty (expected 'source<TAB>target')"),
        ("a\tb\nsource\t  \n", "2: the target field is empty (expected 'source<TAB>target')"),
    ],
)
def test_pair_line_errors(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(err.value) == f"{path}:{message}"


def test_labeled_errors(tmp_path):
    path = write(tmp_path, "positive\tgood\n\tno label\n")
    with pytest.raises(DataError) as err:
        read_labeled(path)
    assert str(err.value) == f"{path}:2: the label field is empty (expected 'label<TAB>text')"
    path = write(tmp_path, "positive good\n")
    with pytest.raises(DataError) as err:
        read_labeled(path)
    assert str(err.value) == f"{path}:1: expected 'label<TAB>text' (2 fields), found 1 field"


def test_missing_file(tmp_path):
    path = tmp_path / "data.tsv"
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(err.value) == f"{path}: no such file"


def test_directory(tmp_path):
    with pytest.raises(DataError) as err:
        read_pairs(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a directory (expected a file of lines of 'source<TAB>target')"


def test_not_utf8(tmp_path):
    path = write(tmp_path, b"a\tb\nc\td\nabcd\xffx\ty\n")
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(err.value) == f"{path}:3: not valid UTF-8 (byte 0xff at column 5)"


@pytest.mark.parametrize("content", ["", "\n\n  \r\n", "\ufeff\n"])
def test_empty_files(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(err.value) == f"{path}: file is empty (expected lines of 'source<TAB>target')"
    with pytest.raises(DataError) as err:
        read_labeled(path)
    assert str(err.value) == f"{path}: file is empty (expected lines of 'label<TAB>text')"
    with pytest.raises(DataError) as err:
        read_text(path)
    assert str(err.value) == f"{path}: file is empty (expected lines of text)"


def test_messages_are_one_line(tmp_path):
    path = write(tmp_path, "x\ty\tz\n")
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert "\n" not in str(err.value)


def test_unknown_kind(tmp_path):
    path = write(tmp_path, "a\tb\n")
    with pytest.raises(ConfigError, match="unknown data kind 'translate' .expected one of: seq2seq, lm, mlm, classify."):
        read_examples(path, "translate")


def test_split_sizes_and_determinism():
    examples = [Text(str(i)) for i in range(100)]
    a = split_examples(examples, seed=1)
    assert a.sizes == (90, 5, 5)
    assert sorted(a.train + a.valid + a.test, key=lambda t: int(t.text)) == examples
    assert split_examples(examples, seed=1) == a
    assert split_examples(examples, seed=2) != a
    assert split_examples(examples, seed=1, valid_fraction=0.1, test_fraction=0.2).sizes == (70, 10, 20)


@pytest.mark.parametrize("n, sizes", [(3, (1, 1, 1)), (4, (2, 1, 1)), (20, (18, 1, 1))])
def test_split_small(n, sizes):
    assert split_examples([Text(str(i)) for i in range(n)], seed=0).sizes == sizes


def test_split_too_few():
    with pytest.raises(DataError, match="only 2 examples; need at least 3"):
        split_examples([Text("a"), Text("b")], seed=0)
    with pytest.raises(ConfigError):
        split_examples([Text("a")] * 5, seed=0, valid_fraction=0.6, test_fraction=0.5)


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 64, 1 << 20])
def test_lines_read_in_blocks_are_those_of_the_whole_file_with_their_numbers(tmp_path, block_bytes):
    from glassformer.data.lines import numbered_lines

    text = "\ufeffa\tb\r\n\n  \nnaïve\tΑΣ\r\nlast line without break"
    path = write(tmp_path, text)
    expected = [(1, "a\tb"), (4, "naïve\tΑΣ"), (5, "last line without break")]
    assert list(numbered_lines(path, "text", block_bytes)) == expected
    bad = write(tmp_path, b"ok\none\n\xffbad\n", "bad.txt")
    with pytest.raises(DataError, match=r"bad.txt:3: not valid UTF-8 \(byte 0xff at column 1\)"):
        list(numbered_lines(bad, "text", block_bytes))
    with pytest.raises(DataError, match="file is empty"):
        list(numbered_lines(write(tmp_path, "\n \r\n", "empty.txt"), "text", block_bytes))
