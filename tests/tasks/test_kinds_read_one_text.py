"""What `ablate`, `patch` and `lens` read from one text is each task kind's to say: the commands ask
the kind in `glassformer.tasks.KINDS`, so a kind added to the table is read without editing them; and
the run folder checks a run's kind against the table its caller passes, importing no kind itself."""

import ast
import json
from pathlib import Path

import pytest
import torch

from glassformer.cli.main import main
from glassformer.config import get_preset
from glassformer.models import build_model
from glassformer.run_folder import load_run, save_run
from glassformer.tasks import KINDS
from glassformer.tasks.lm import LanguageModel
from glassformer.text import WordTokenizer


def test_each_kind_says_what_one_text_is_read_for():
    said = {name: (kind.answer, kind.predicts, kind.decodes, kind.target_prefix) for name, kind in KINDS.items()}
    assert said == {
        "seq2seq": ("next target token", "next target token", True, True),
        "lm": ("next token", "next token", True, False),
        "mlm": ("token at <mask>", "token", False, False),
        "classify": ("label", None, False, False),
        "tag": (None, None, False, False),
        "qa": (None, None, False, False),
        "encode": (None, None, False, False),
    }


class _SecondToLast(LanguageModel):
    """A made-up kind: a language model whose answer is read one position before the last."""

    name = "second-to-last"
    answer = predicts = "token after the second-to-last"

    def answer_position(self, run, rows, what):
        return len(rows[-1]) - 2


@pytest.fixture
def lm_folder(tmp_path):
    tok = WordTokenizer.train(["the cat sat on the mat"])
    config = get_preset("tiny-llama").replace(vocab_size=tok.vocab_size, max_len=16)
    torch.manual_seed(0)
    return tmp_path, build_model(config).eval(), config, tok


def test_a_kind_added_to_the_table_is_read_by_the_commands(lm_folder, monkeypatch, capsys):
    root, model, config, tok = lm_folder
    monkeypatch.setitem(KINDS, "second-to-last", _SecondToLast())
    path = save_run(root / "run", model, config, "second-to-last", tok)
    assert main(["ablate", "--model", str(path), "--ffn", "1", "the cat sat", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        probs = model(torch.tensor([[tok.start_id, *tok.encode("the cat sat")]]))[0, -2].softmax(-1)
    assert out["kind"] == "second-to-last" and out["before"]["top"] == tok.id_to_token(int(probs.argmax()))
    assert out["before"]["p_top"] == pytest.approx(float(probs.max()), abs=1e-6)
    assert main(["ablate", "--model", str(path), "--ffn", "1", "the cat sat"]) == 0
    assert "reading the token after the second-to-last" in capsys.readouterr().out


def test_a_run_of_a_kind_not_in_the_table_is_refused_in_one_line(lm_folder, capsys):
    root, model, config, tok = lm_folder
    path = save_run(root / "run", model, config, "made-up", tok)
    assert main(["lens", "--model", str(path), "the cat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '"kind" must be one of seq2seq, lm, mlm, classify' in err
    assert load_run(path).kind == "made-up"  # the run folder alone knows no kinds


def test_the_run_folder_imports_no_task_kind_and_no_trainer():
    import glassformer.run_folder as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    ours = sorted(name.split(".")[1] for name in imported if name.startswith("glassformer."))
    assert ours == ["config", "errors", "files", "framing", "models", "text"]
