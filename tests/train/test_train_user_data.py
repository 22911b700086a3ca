"""Every mistake a user can make with data or flags is one clear line and exit status 2."""

import pytest

from glassformer.cli import main


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "content, kind, message",
    [
        (b"hello\tbonjour\nbroken line\n", "seq2seq", r"data.txt:2: expected 'source<TAB>target'"),
        (b"a\tb\tc\n", "seq2seq", r"data.txt:1: expected 'source<TAB>target' \(2 fields\), found 3 fields"),
        (b"ok\tfine\n\xff\xfe bad\tx\n", "seq2seq", r"data.txt:2: not valid UTF-8"),
        (b"", "lm", r"data.txt: file is empty"),
        (b"\n\n", "classify", r"data.txt: file is empty"),
        (b"positive\tgreat\nno label here\n", "classify", r"data.txt:2: expected 'label<TAB>text'"),
    ],
)
def test_bad_data_files(tmp_path, capsys, content, kind, message):
    import re

    path = tmp_path / "data.txt"
    path.write_bytes(content)
    code, err = _run(["train", "--data", str(path), "--kind", kind, "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 2
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "gpt5"], "unknown preset 'gpt5'"),
        (["train", "--task", "chess"], "unknown task 'chess'"),
        (["train", "--data", "/nonexistent/file.tsv", "--kind", "seq2seq"], "no such file"),
        (["train", "--data", "x.tsv"], "--data needs --kind"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--resume", "--out", "/nonexistent/run"], "no such folder"),
        (["train", "--schedule", "linear"], "schedule='linear' is not one of"),
        (["classify", "--model", "/nonexistent/run", "good"], "no such folder"),
        (["evaluate", "--model", "/tmp"], "not a run folder"),
    ],
)
def test_bad_flags_and_folders(capsys, monkeypatch, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)  # the default run folder (runs/TASK) lands here
    code, err = _run(args, capsys)
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_users_own_classification_file_trains(tmp_path, capsys):
    lines = [f"{'pos' if i % 2 else 'neg'}\t{'good fine nice' if i % 2 else 'bad awful poor'} {i % 7}" for i in range(200)]
    path = tmp_path / "labels.tsv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    code = main(["train", "--data", str(path), "--kind", "classify", "--preset", "tiny-encoder", "--steps", "40",
                 "--lr", "3e-3", "--warmup", "5", "--batch-size", "32", "--eval-every", "20", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "test: " in capsys.readouterr().out
    assert main(["classify", "--model", str(out), "good fine nice 3", "bad awful poor 2"]) == 0
    out_lines = capsys.readouterr().out.splitlines()
    assert out_lines[0].startswith("pos") and out_lines[1].startswith("neg")
