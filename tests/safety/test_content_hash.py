"""A data file's SHA-256 is read once per process while the file does not change: --resume checks the
data and then prepares it, which hashed a gigabyte corpus twice."""

import time

import glassformer.files as files
from glassformer.cli import main
from glassformer.data.lines import file_digest
from glassformer.files import file_sha256


def _reads_of(path, monkeypatch):
    """The names of the files sha256_of reads, in order."""
    reads, real = [], files.sha256_of

    def counted(f):
        reads.append(f.name)
        return real(f)

    monkeypatch.setattr(files, "sha256_of", counted)
    return reads


def test_an_unchanged_settled_file_is_read_once_and_a_changed_one_again(tmp_path, monkeypatch):
    data = tmp_path / "lines.txt"
    data.write_text("one\ntwo\n")
    reads = _reads_of(data, monkeypatch)
    first = file_sha256(data)  # just changed: not remembered (a change in the same tick would look alike)
    assert file_digest(data) == (first, 8) and reads == [str(data)] * 2
    monkeypatch.setattr(files, "SETTLED_S", 0.0)  # as if changed long ago (writing sets its change time now)
    assert file_sha256(data) == first and file_digest(data) == (first, 8) and len(reads) == 3
    time.sleep(0.05)  # past the timestamps' tick
    data.write_text("six\nten\n")  # the same size, new modification and change times
    changed = file_sha256(data)
    assert changed != first and len(reads) == 4 and file_digest(data) == (changed, 8) and len(reads) == 4


def test_resume_reads_the_data_file_once(tmp_path, monkeypatch):
    data, out = tmp_path / "text.txt", tmp_path / "run"
    data.write_text("\n".join(f"the cat {w} on the mat number {i % 7}" for i, w in enumerate(["sat", "lay"] * 12)))
    monkeypatch.setattr(files, "SETTLED_S", 0.0)  # as if the file had been written long ago
    common = ["--no-progress", "--examples", "0", "--eval-every", "2", "--checkpoint-every", "2"]
    assert main(["train", "--data", str(data), "--kind", "lm", "--preset", "tiny-lm", "--steps", "2",
                 "--batch-size", "4", "--out", str(out), *common]) == 0
    files._DIGESTS.clear()  # as a new process
    reads = _reads_of(data, monkeypatch)
    assert main(["train", "--resume", "--out", str(out), "--steps", "3", "--no-progress"]) == 0
    assert reads.count(str(data)) == 1
