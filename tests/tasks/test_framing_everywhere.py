"""Fine-tuning a Hugging Face BART folder frames a sentence the same way in training, evaluation and
decoding: BART's <s> text </s> source and </s> decoder start, not glassformer's text <end> and <start>."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

transformers = pytest.importorskip("transformers")
from transformers import BartConfig, BartForConditionalGeneration  # noqa: E402

import glassformer.generate.runs as runs  # noqa: E402
from glassformer.cli import main  # noqa: E402
from glassformer.models.encoder_decoder import EncoderDecoder  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
BOS, PAD, EOS = 0, 1, 2  # BART's ids; glassformer's own framing would put <start> = BOS first on the decoder side
SENTENCE, TARGET = "the cat sat", "the mat"


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bart")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=90, special_tokens=specials, show_progress=False))
    torch.manual_seed(0)
    config = BartConfig(encoder_layers=1, decoder_layers=1, d_model=16, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24,
                        vocab_size=tok.get_vocab_size(), max_position_embeddings=32, forced_eos_token_id=None)
    BartForConditionalGeneration(config).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder, tok


def _rows(ids: torch.Tensor) -> list[list[int]]:
    """Id rows without their right padding."""
    rows = []
    for row in ids.tolist():
        while row and row[-1] == PAD:
            row.pop()
        rows.append(row)
    return rows


def test_training_evaluation_and_decoding_frame_a_sentence_alike(bart, tmp_path, monkeypatch, capsys):
    folder, tok = bart
    words = tok.encode(SENTENCE).ids
    expected = [BOS, *words, EOS]  # as transformers' BART frames it
    assert expected == [0, 27, 48, 54, 2]  # training used to see [27, 48, 54, 2] and decoder start 0
    data = tmp_path / "pairs.tsv"
    data.write_text(f"{SENTENCE}\t{TARGET}\n" * 12, encoding="utf-8")

    seen = {"teacher": [], "decoded": []}  # (source row, decoder start) per example the model saw
    forward = EncoderDecoder.forward

    def watched_forward(self, src, tgt, *args, **kwargs):
        seen["teacher"].extend((row, start) for row, start in zip(_rows(src), tgt[:, 0].tolist()))
        return forward(self, src, tgt, *args, **kwargs)

    generate = runs.generate_seq2seq

    def watched_generate(model, sources, start, *args, **kwargs):
        seen["decoded"].extend((list(row), start) for row in sources)
        return generate(model, sources, start, *args, **kwargs)

    monkeypatch.setattr(EncoderDecoder, "forward", watched_forward)
    monkeypatch.setattr(runs, "generate_seq2seq", watched_generate)

    def framings(argv):
        for key in seen:
            seen[key].clear()
        assert main(argv) == 0, capsys.readouterr().err
        return {key: sorted({(tuple(row), start) for row, start in pairs}) for key, pairs in seen.items()}

    out = tmp_path / "run"
    common = ["--no-progress", "--examples", "0", "--batch-size", "4"]
    training = framings(["train", "--init", str(folder), "--data", str(data), "--kind", "seq2seq", "--steps", "2",
                         "--eval-every", "2", "--out", str(out), *common])
    evaluation = framings(["evaluate", "--model", str(out), "--data", str(data)])
    decoding = framings(["translate", "--model", str(out), SENTENCE])
    alike = [(tuple(expected), EOS)]
    assert training == {"teacher": alike, "decoded": alike}  # training steps, then validation
    assert evaluation == {"teacher": alike, "decoded": alike}
    assert decoding == {"teacher": [], "decoded": alike}
