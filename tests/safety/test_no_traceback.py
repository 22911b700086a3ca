"""Every user mistake is one line and exit 2: the listed cases, then a property test fuzzing the CLI."""

import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.inspect.trace import check_trace_memory
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text.word import WordTokenizer

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the mat was red"]


def _save_tiny(path, preset="tiny-lm", kind="lm"):
    tokenizer = WordTokenizer.train(TEXTS)
    torch.manual_seed(0)
    config = get_preset(preset).replace(vocab_size=tokenizer.vocab_size, max_len=32)
    save_run(path, build_model(config), config, kind, tokenizer)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lm": _save_tiny(root / "lm"), "encoder": _save_tiny(root / "encoder", "tiny-encoder", "encode")}


def _run(argv):
    """(exit status, stdout, stderr) of the CLI; any exception but SystemExit escapes, as a traceback would."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def _edited(run, tmp_path, edit):
    folder = tmp_path / "edited"
    shutil.copytree(run, folder)
    document = json.loads((folder / "config.json").read_text())
    edit(document)
    (folder / "config.json").write_text(json.dumps(document))
    return folder


def _one_line_error(argv, fragment):
    code, _, err = _run(argv)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, (code, err)


def test_a_config_json_with_a_wrong_type_is_one_line(runs, tmp_path):
    folder = _edited(runs["lm"], tmp_path, lambda d: d["model"].update(d_model="wide"))
    _one_line_error(["trace", "--model", str(folder)], 'the "model" settings are damaged')


def test_a_tokenizer_larger_than_the_models_vocabulary_is_one_line(runs, tmp_path):
    folder = _edited(runs["lm"], tmp_path, lambda d: d["model"].update(vocab_size=8))
    _one_line_error(["trace", "--model", str(folder), "the cat"], "the source tokenizer has 17 tokens, more than the model's vocabulary of 8")


def test_output_paths_that_cannot_be_written_are_one_line(tmp_path):
    _one_line_error(["report", "--preset", "tiny-lm", "--out", str(tmp_path)], "is a folder (expected the report")
    _one_line_error(["attention", "--preset", "tiny-lm", "--export", str(tmp_path / "missing" / "maps.json"), "a b"],
                    "missing: no such folder for the attention export")


def test_a_trace_too_big_for_memory_is_refused_with_the_estimate_before_allocating():
    with pytest.raises(UserError, match=r"tracing batch 100000 x 8 tokens would keep about 856.4 GiB of activations, "
                                        r"more than the 16.0 GiB of memory available"):
        check_trace_memory(get_preset("paper-big"), 100000, 8, 8, available=16 * 2**30)
    check_trace_memory(get_preset("paper-big"), 1, 8, 8, available=16 * 2**30)
    _one_line_error(["trace", "--preset", "tiny-lm", "--batch", "100000000"], "would keep about")


@pytest.mark.parametrize("argv", [["trace", ""], ["attention", " "], ["explain", ""],
                                  ["report", "", "--out", "r.html"], ["embed", "--model", "RUN", "fine", ""]])
def test_empty_input_exits_2(argv, runs):
    argv = [str(runs["encoder"]) if a == "RUN" else a for a in argv]
    if argv[0] in ("trace", "attention", "report"):
        argv += ["--preset", "tiny-lm"]
    _one_line_error(argv, "empty")


# Property test: whatever the arguments, files, folders and texts, the exit status is 0 or 2 and no
# exception escapes main (which is what prints a traceback). Derandomised so the suite is repeatable.
# GLASSFORMER_FUZZ_EXAMPLES=500 (and derandomize off) searches harder than the suite's quick pass.
FUZZ = settings(max_examples=int(os.environ.get("GLASSFORMER_FUZZ_EXAMPLES", 30)), deadline=None,
                derandomize="GLASSFORMER_FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
numbers = st.one_of(st.integers(-10, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", "x", "1e999", "-0", "0x10", "½"]))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | words,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
                           max_leaves=8)


@FUZZ
@given(command=st.sampled_from(["trace", "attention", "report"]), text=words, flag=st.sampled_from(
    ["--seq", "--batch", "--layer", "--head", "--max-steps", "--top-k", "--seed", "--src-seq"]), value=numbers)
def test_fuzzed_arguments_and_texts_exit_0_or_2(tmp_path, command, text, flag, value):
    argv = [command, text, "--preset", "tiny-lm", flag, value]
    if command == "report":
        argv += ["--out", str(tmp_path / "r.html")]
    if command == "trace" and flag in ("--layer", "--head", "--max-steps", "--top-k"):
        argv[-2] = "--layers"
    code, _, err = _run(argv)
    assert code in (0, 2) and "Traceback" not in err, (argv, code, err)


@FUZZ
@given(field=st.sampled_from(["d_model", "n_heads", "vocab_size", "max_len", "family", "norm", "kind", "labels",
                              "shared_tokenizer", "version", "model"]), value=json_values)
def test_fuzzed_run_folders_exit_0_or_2(runs, tmp_path_factory, field, value):
    folder = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(runs["lm"], folder)
    document = json.loads((folder / "config.json").read_text())
    (document if field in ("kind", "labels", "shared_tokenizer", "version", "model") else document["model"])[field] = value
    (folder / "config.json").write_text(json.dumps(document))
    for argv in (["trace", "--model", str(folder), "the cat"], ["embed", "--model", str(folder), "the cat"]):
        code, _, err = _run(argv)
        assert code in (0, 2) and "Traceback" not in err, (argv, code, err)


@FUZZ
@given(kind=st.sampled_from(["seq2seq", "lm", "mlm", "classify", "tag", "qa"]),
       content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_data_files_are_read_or_refused_in_one_line(tmp_path_factory, kind, content):
    from glassformer.tasks import read_examples

    path = tmp_path_factory.mktemp("data") / "data.txt"
    path.write_bytes(content)
    try:
        read_examples(str(path), kind)
    except UserError as error:
        assert "\n" not in str(error).strip()
