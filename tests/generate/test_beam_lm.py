"""Beam search and n-best lists for decoder-only models (`generate --beam N --nbest K`)."""

import itertools

import pytest
import torch

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.generate import Stopping, beam_search_lm, generate_lm, length_penalty
from glassformer.models import build_model

END = 2
VOCAB = 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = get_preset("tiny-llama").replace(vocab_size=VOCAB, d_model=32, d_ff=48, max_len=32)
    model = build_model(config).eval()
    with torch.no_grad():  # wider weights than the initialisation: a random model with opinions
        for p in model.parameters():
            p.mul_(3.0)
    return model


def log_prob(model, prompt, tokens):
    """Sum of log p(token | everything before) over the continuation, by one forward pass."""
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)[0].double(), dim=-1)
    return sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(tokens))


def test_nbest_scores_are_the_models_log_probabilities_best_first(model):
    prompts = [[1, 3, 4, 5], [1, 5], [1, 4, 4]]
    results = beam_search_lm(model, prompts, END, beam_size=4, nbest=3, max_new_tokens=6)
    for prompt, hyps in zip(prompts, results):
        assert len(hyps) == 3
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 3
        for h in hyps:
            assert h.log_prob == pytest.approx(log_prob(model, prompt, h.tokens), abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens)), abs=1e-9)
            assert len(h.tokens) <= 6 and (h.tokens[-1] == END or len(h.tokens) == 6)


def test_padded_batch_equals_each_prompt_alone_and_cache_equals_recompute(model):
    prompts = [[1, 3, 4, 5, 3], [1, 5], [1, 4, 4]]
    batched = beam_search_lm(model, prompts, END, beam_size=3, nbest=2, max_new_tokens=5)
    uncached = beam_search_lm(model, prompts, END, beam_size=3, nbest=2, max_new_tokens=5, use_cache=False)
    for prompt, hyps, again in zip(prompts, batched, uncached):
        [alone] = beam_search_lm(model, [prompt], END, beam_size=3, nbest=2, max_new_tokens=5)
        assert [h.tokens for h in hyps] == [h.tokens for h in alone] == [h.tokens for h in again]
        # fp32 sums over padded and unpadded rows: differences up to 1.2e-5 measured under
        # ATEN_CPU_CAPABILITY=default (below 1e-5 with AVX2 kernels)
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_beam_of_one_is_greedy_decoding(model):
    prompts = [[1, 3, 4], [1, 5, 5, 3]]
    greedy = generate_lm(model, prompts, stopping=Stopping(end_id=END, max_new_tokens=7))
    beams = beam_search_lm(model, prompts, END, beam_size=1, max_new_tokens=7)
    assert [b[0].tokens for b in beams] == [g.tokens for g in greedy]


def test_a_wide_beam_finds_the_best_of_every_continuation(model):
    """With K = V^2 beams and 3 new tokens the search keeps every prefix: exhaustive."""
    prompt = [1, 4, 3]
    continuations = []
    for n in (1, 2, 3):
        for tokens in itertools.product(range(VOCAB), repeat=n):
            ended = END in tokens[:-1]
            if not ended and (tokens[-1] == END or n == 3):
                continuations.append(list(tokens))
    best = max(continuations, key=lambda t: log_prob(model, prompt, t))
    [hyps] = beam_search_lm(model, [prompt], END, beam_size=VOCAB**2, penalty="none", max_new_tokens=3)
    assert hyps[0].tokens == best
    assert hyps[0].log_prob > log_prob(model, prompt, generate_lm(model, [prompt], stopping=Stopping(
        end_id=END, max_new_tokens=3))[0].tokens) - 1e-6


def test_bad_beam_settings_are_user_errors(model):
    with pytest.raises(UserError, match="n-best of 3 needs a beam of at least 3"):
        beam_search_lm(model, [[1]], END, beam_size=2, nbest=3)
    with pytest.raises(UserError, match="empty prompt"):
        beam_search_lm(model, [[]], END)


def test_generate_command_prints_the_nbest_list(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from glassformer.interop import export_hf
    from glassformer.text import SubwordTokenizer

    words = ["<unk>", "<s>", "</s>", "the", "cat", "sat"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = SubwordTokenizer(raw, {"unk": "<unk>", "start": "<s>", "end": "</s>"})
    torch.manual_seed(0)
    lm = build_model(get_preset("tiny-llama").replace(vocab_size=VOCAB, max_len=32)).eval()
    from glassformer.run_folder import Run

    folder = export_hf(Run(tmp_path, lm, lm.config, "lm", tokenizer, tokenizer, [], {}), tmp_path / "lm")
    assert main(["generate", "--model", str(folder), "--prompt", "the cat", "--beam", "3", "--nbest", "2",
                 "--max-new-tokens", "4", "--plain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 2 for line in lines)
    assert float(lines[0].split("\t")[0]) >= float(lines[1].split("\t")[0])
    assert main(["generate", "--model", str(folder), "--prompt", "the", "--beam", "2", "--top-k", "3"]) == 2
    assert "drop --top-k" in capsys.readouterr().err
