"""`glassformer translate`, `generate` and `fill-mask` on tiny saved runs."""

import io

import pytest

from glassformer.cli.main import main
from glassformer.framing import Framing, decoder_start, sequence_ids, source_ids
from glassformer.generate import Sampling, Stopping, beam_search, generate_lm, generate_seq2seq
from glassformer.run_folder import load_run


def test_translate_prints_the_greedy_translation(runs, capsys):
    assert main(["translate", "--model", runs["seq2seq"], "--max-new-tokens", "6", "the cat", "a dog ran"]) == 0
    lines = capsys.readouterr().out.splitlines()
    run = load_run(runs["seq2seq"])
    tok = run.target_tokenizer
    sources = [source_ids(tok, "the cat", Framing()), source_ids(tok, "a dog ran", Framing())]
    expected = generate_seq2seq(run.model, sources, decoder_start(tok, Framing()), stopping=Stopping(tok.end_id, 6))
    assert lines == [tok.decode(g.tokens) for g in expected]


def test_translate_nbest_prints_scored_hypotheses(runs, capsys):
    argv = ["translate", "--model", runs["seq2seq"], "--beam", "3", "--nbest", "2", "--max-new-tokens", "5",
            "--length-penalty", "1.0", "the cat", "birds sing"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    run = load_run(runs["seq2seq"])
    tok = run.target_tokenizer
    [hyps, _] = beam_search(run.model, [source_ids(tok, "the cat", Framing()), source_ids(tok, "birds sing", Framing())], tok.start_id,
                            tok.end_id, beam_size=3, nbest=2, alpha=1.0, max_new_tokens=5)
    index, score, text = lines[0].split("\t")
    assert index == "0" and float(score) == pytest.approx(hyps[0].score, abs=1e-4)
    assert text == tok.decode(hyps[0].tokens)
    assert [line.split("\t")[0] for line in lines] == ["0", "0", "1", "1"]


def test_translate_reads_stdin_line_by_line_keeping_blank_lines(runs, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("the cat\n\na dog\n"))
    assert main(["translate", "--model", runs["seq2seq"], "--max-new-tokens", "4", "--batch-size", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_generate_streams_the_same_text_as_the_library(runs, capsys):
    argv = ["generate", "--model", runs["lm"], "--prompt", "the cat", "--max-new-tokens", "8", "--seed", "3",
            "--top-k", "5", "--temperature", "0.9"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # seeded: reproducible
    run = load_run(runs["lm"])
    tok = run.tokenizer
    [g] = generate_lm(run.model, [sequence_ids(tok, "the cat", Framing(), end=False)],
                      Sampling(greedy=False, temperature=0.9, top_k=5, seed=3), Stopping(tok.end_id, 8))
    assert first == tok.decode(g.tokens) + "\n"


def test_decoding_commands_say_on_stderr_which_speed_ups_apply_unless_plain(runs, capsys):
    argv = ["generate", "--model", runs["lm"], "--prompt", "a dog", "--greedy", "--max-new-tokens", "4"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err.startswith("inference speed-ups on cpu: fused Q/K/V in ") and err.count("\n") == 1
    assert "one flat function per decoding step" in err and "speed-ups" not in out
    assert main(argv + ["--plain"]) == 0
    assert capsys.readouterr() == (out, "")  # the same words, nothing said
    assert main(["translate", "--model", runs["seq2seq"], "--max-new-tokens", "4", "the cat"]) == 0
    assert capsys.readouterr().err.startswith("inference speed-ups on cpu: ")


def test_generate_greedy_with_a_stop_string(runs, capsys):
    base = ["generate", "--model", runs["lm"], "--prompt", "a dog", "--greedy", "--max-new-tokens", "10"]
    assert main(base) == 0
    words = capsys.readouterr().out.split()
    assert len(words) >= 3
    assert main(base + ["--stop", words[2], "--stop", "never seen"]) == 0
    stopped = capsys.readouterr().out.split()
    # Generation ends with the first token whose text completes the stop string.
    n = next(n for n in range(1, len(words) + 1) if words[2] in " ".join(words[:n]))
    assert stopped == words[:n]


def test_generate_with_bf16_weights_runs_the_model_prepared_with_them(runs, capsys, monkeypatch):
    from glassformer.speed import optimize_for_inference
    from glassformer.speed.choice import Choice

    def bf16_everywhere(out_features, in_features, bias, dtype, weights="fp32", only=None):  # no measuring in a test
        return Choice(False, ("linear", "linear", "upcast"), "bfloat16" if weights == "bf16" else "float32")

    monkeypatch.setattr("glassformer.speed.small_batch.choose", bf16_everywhere)
    monkeypatch.setattr("glassformer.speed.fused_qkv.choose", bf16_everywhere)
    argv = ["generate", "--model", runs["lm"], "--prompt", "a dog", "--greedy", "--max-new-tokens", "10"]
    assert main(argv + ["--weights", "bf16"]) == 0
    got = capsys.readouterr().out
    run = load_run(runs["lm"])
    done = optimize_for_inference(run.model, weights="bf16")
    assert done.bf16_products == done.products > 0
    tok = run.tokenizer
    [g] = generate_lm(run.model, [sequence_ids(tok, "a dog", Framing(), end=False)], Sampling(greedy=True), Stopping(tok.end_id, 10))
    assert got == tok.decode(g.tokens) + "\n"


def test_fill_mask_prints_top_k_per_mask(runs, capsys):
    assert main(["fill-mask", "--model", runs["mlm"], "--top-k", "3", "the <mask> sat on the <mask>"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.startswith("<mask>") for line in lines] == [True, False, False, False] * 2
    assert lines[0] == "<mask> 1 (position 2):"
    probs = [float(line.split()[0]) for line in lines[1:4]]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "--model", "{lm}", "hello"], "is a 'lm' model; translate needs a 'seq2seq' model"),
        (["generate", "--model", "{seq2seq}", "--prompt", "hi"], "is a 'seq2seq' model; generate needs a 'lm' model"),
        (["fill-mask", "--model", "{lm}", "a <mask>"], "is a 'lm' model; fill-mask needs a 'mlm' model"),
        (["translate", "--model", "{seq2seq}"], "no input"),
        (["translate", "--model", "{seq2seq}", "  "], "no input"),
        (["generate", "--model", "{lm}", "--prompt", ""], "empty prompt"),
        (["fill-mask", "--model", "{mlm}", "no mask here"], "has no <mask>"),
        (["fill-mask", "--model", "{mlm}", ""], "empty text"),
        (["translate", "--model", "{seq2seq}", "--nbest", "2", "x"], "--nbest 2 needs --beam of at least 2"),
        (["generate", "--model", "{lm}", "--prompt", "x", "--top-p", "2"], "--top-p: expected a finite number > 0 and <= 1"),
        (["generate", "--model", "{lm}", "--prompt", " ".join(["the"] * 80)], "reaches the model's maximum of 64"),
        (["generate", "--model", "{lm}", "--prompt", "x", "--plain", "--weights", "bf16"], "cannot go with --plain"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(runs, capsys, monkeypatch, argv, message):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main([a.format(**runs) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert message in captured.err and "Traceback" not in captured.err
