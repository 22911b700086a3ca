"""Tiny random models for the decoding tests, built so that greedy choices are clear-cut.

With the output projection tied to the embedding, a random model mostly repeats its input
token forever. Untied, it produces varied tokens whose top two logits stay ~1e-3 apart over
the steps the tests run, far above the ~1e-6 by which cached and uncached logits differ, so
token equality is a meaningful check (the tests assert that margin too).
"""

import pytest
import torch

from glassformer.config import get_preset
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer

VOCAB = 40


@pytest.fixture
def lm():
    # Sinusoidal positions and scaled embeddings: with this seed every greedy choice is clear-cut
    # (so are seeds 5 and 6; of seeds 0-8 the others leave a near-tie or a constant output).
    torch.manual_seed(2)
    config = get_preset("tiny-lm").replace(
        vocab_size=VOCAB, tie_output=False, max_len=128, positions="sinusoidal", scale_embeddings=True,
        activation="relu",
    )
    return build_model(config).eval()


@pytest.fixture
def seq2seq():
    torch.manual_seed(2)
    config = get_preset("tiny-seq2seq").replace(vocab_size=VOCAB, tie_output=False, max_len=128)
    return build_model(config).eval()


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """One saved run folder of each kind ("seq2seq", "lm", "mlm") with random weights."""
    root = tmp_path_factory.mktemp("runs")
    tok = WordTokenizer.train(["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn ."])
    torch.manual_seed(0)
    paths = {}
    for kind, preset, changes in [
        ("seq2seq", "tiny-seq2seq", dict(tie_output=False)),
        ("lm", "tiny-lm", dict(tie_output=False)),
        ("mlm", "tiny-encoder", dict(head="mlm")),
    ]:
        config = get_preset(preset).replace(vocab_size=tok.vocab_size, max_len=64, **changes)
        paths[kind] = str(save_run(root / kind, build_model(config).eval(), config, kind, tok))
    return paths
