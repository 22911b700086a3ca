"""Marian (opus-mt's shape) from and to Hugging Face folders: logits on padded batches, greedy
decoding against generate, exact round trips, and the trained-here post-norm model exported."""

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

transformers = pytest.importorskip("transformers")
from transformers import MarianConfig, MarianMTModel  # noqa: E402

from glassformer import generate  # noqa: E402
from glassformer.config import get_preset  # noqa: E402
from glassformer.framing import Framing, decoder_start, source_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.interop.hf_marian import paper_order  # noqa: E402
from glassformer.models import build_model  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
EOS = 0  # as opus-mt: </s> 0, <unk> 1, <pad> after the pieces
TINY = dict(
    vocab_size=90, decoder_vocab_size=90, d_model=32, encoder_layers=2, decoder_layers=3,
    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
    max_position_embeddings=64, activation_function="swish", scale_embedding=True,
    eos_token_id=EOS, forced_eos_token_id=None, init_std=0.2,
)


def marian_tokenizer(path):
    """A Unigram vocabulary with Marian's special ids and its post-processor: text </s>."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=89, special_tokens=["</s>", "<unk>"], unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(["<pad>"])  # the next free id
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    tok.save(str(path))
    return tok


def save_marian(folder):
    torch.manual_seed(0)
    tok = marian_tokenizer(folder.with_suffix(".tok.json"))
    pad = tok.token_to_id("<pad>")
    model = MarianMTModel(MarianConfig(**{**TINY, "pad_token_id": pad, "decoder_start_token_id": pad})).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(std=0.1)
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return model, pad


def source_batch(pad, high=None):
    ids = torch.randint(2, high or pad, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids = ids.masked_fill(mask == 0, pad)
    for row, n in zip(ids, mask.sum(1)):
        row[n - 1] = EOS
    return ids, mask


def key_mask(mask):
    return mask.bool()[:, None, None, :]


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marian") / "opus-tiny"
    hf, pad = save_marian(folder)
    return folder, hf, pad


def test_logits_match_transformers_on_padded_batches(marian):
    folder, hf, pad = marian
    run = load_hf_folder(folder)
    c = run.config
    assert (c.norm, c.use_final_norm, c.positions, c.activation, c.scale_embeddings, c.output_bias) == (
        "post", False, "sinusoidal", "silu", True, True)
    src, src_mask = source_batch(pad)
    tgt = torch.randint(2, pad, (3, 7))
    tgt[:, 0] = pad
    tgt_mask = torch.ones(3, 7, dtype=torch.long)
    tgt_mask[2, 5:] = 0
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        memory = run.model.encode(src, key_mask(src_mask))
        logits = run.model.decode(tgt, memory, key_mask(src_mask), key_mask(tgt_mask))
    real_src, real_tgt = src_mask.bool(), tgt_mask.bool()
    # Our residual stream holds Marian's coordinates in the paper's order.
    marian_order = memory[..., paper_order(c.d_model)]
    assert (marian_order - expected.encoder_last_hidden_state)[real_src].abs().max() < 1e-4
    assert (logits - expected.logits)[real_tgt].abs().max() < 1e-4


def test_framing_follows_the_post_processor(marian):
    folder, _, pad = marian
    run = load_hf_folder(folder)
    framing = Framing.from_meta(run.meta)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert source_ids(run.tokenizer, "hello world", framing) == raw.encode("hello world").ids
    assert source_ids(run.tokenizer, "hello world", framing)[-1] == EOS
    assert decoder_start(run.tokenizer, framing) == pad


def test_glassformer_generate_matches_generate(marian):
    folder, hf, pad = marian
    run = load_hf_folder(folder)
    src, src_mask = source_batch(pad)
    sources = [row[:n].tolist() for row, n in zip(src, src_mask.sum(1))]
    start = decoder_start(run.tokenizer, Framing.from_meta(run.meta))
    with torch.no_grad():
        expected = hf.generate(src, attention_mask=src_mask, do_sample=False, num_beams=1, max_new_tokens=20)
    results = generate.generate_seq2seq(run.model, sources, start, stopping=generate.Stopping(end_id=EOS, max_new_tokens=20))
    for result, reference in zip(results, expected.tolist()):
        reference = reference[1:]
        if EOS in reference:
            reference = reference[: reference.index(EOS) + 1]
        assert result.tokens == reference


def test_import_export_import_is_exact(marian, tmp_path):
    folder, hf, pad = marian
    run = load_hf_folder(folder)
    out = export_hf(run, tmp_path / "exported")
    original, written = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    again = MarianMTModel.from_pretrained(out).eval()
    src, src_mask = source_batch(pad)
    tgt = torch.randint(2, pad, (3, 5))
    with torch.no_grad():
        assert torch.equal(again(src, attention_mask=src_mask, decoder_input_ids=tgt).logits,
                           hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits)
    reread = load_hf_folder(out)
    assert reread.meta["framing"] == run.meta["framing"]
    assert reread.tokenizer.to_dict() == run.tokenizer.to_dict()
    ours, back = run.model.state_dict(), reread.model.state_dict()
    assert ours.keys() == back.keys() and all(torch.equal(ours[k], back[k]) for k in ours)


@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_post_norm_model_trained_here_exports_as_marian(tmp_path, activation):
    # The paper's layout: post-norm, sinusoidal positions, sqrt(d_model) scaling, no output bias
    # (written as a zero final_logits_bias).
    config = get_preset("tiny-seq2seq").replace(vocab_size=90, norm="post", activation=activation)
    assert config.positions == "sinusoidal" and config.scale_embeddings and not config.use_final_norm
    torch.manual_seed(0)
    model = build_model(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    out = export_hf(model, tmp_path / "exported")
    hf = MarianMTModel.from_pretrained(out).eval()
    src, src_mask = source_batch(pad=0, high=90)
    tgt = torch.randint(5, 90, (3, 6))
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        ours = model(src, tgt, key_mask(src_mask))
    assert (ours - expected).abs().max() < 1e-4
