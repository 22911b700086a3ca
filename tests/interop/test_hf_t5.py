"""T5 (v1.0: ReLU, tied and scaled head; v1.1/FLAN: gated GELU, untied head) from and to Hugging
Face folders: logits on padded batches, greedy tokens, exact round trips, the T5-style model
trained here exported, and the commands on a T5 folder."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

transformers = pytest.importorskip("transformers")
from transformers import T5Config, T5ForConditionalGeneration  # noqa: E402

from glassformer import generate  # noqa: E402
from glassformer.config import get_preset  # noqa: E402
from glassformer.framing import Framing, decoder_start, source_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.models import build_model  # noqa: E402

transformers.logging.set_verbosity_error()
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, again and again"] * 4
PAD, EOS = 0, 1  # as T5: <pad> 0, </s> 1, <unk> 2
# d_kv * num_heads = 24 differs from d_model = 32, as in T5-3B/11B; 8 buckets over 20 positions
# so that sequences of 9 reach the logarithmic buckets.
TINY = dict(
    d_model=32, d_kv=6, d_ff=40, num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
    dropout_rate=0.0, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
)
# v1.0 has a decoder deeper than its encoder here, which transformers' generate cannot decode
# (see test_greedy_tokens_match_transformers); v1.1 has equal stacks and is compared with generate.
VERSIONS = {
    "v1.0": dict(feed_forward_proj="relu", num_layers=2, num_decoder_layers=3),
    "v1.1": dict(feed_forward_proj="gated-gelu", num_layers=2, num_decoder_layers=2),
}


def t5_tokenizer(vocab_size: int = 80) -> Tokenizer:
    """A Unigram vocabulary with T5's special ids and its post-processor: text </s>."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    return tok


def save_t5(folder, version: str):
    """A tiny random T5 of the given version in folder; returns transformers' model read back from it."""
    torch.manual_seed(0)
    tok = t5_tokenizer()
    model = T5ForConditionalGeneration(T5Config(vocab_size=tok.get_vocab_size(), **TINY, **VERSIONS[version])).eval()
    with torch.no_grad():
        for bias in (model.encoder, model.decoder):
            bias.block[0].layer[0].SelfAttention.relative_attention_bias.weight.normal_(std=1.0)
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    if version == "v1.1":
        # transformers 5 cannot build an untied T5 from a config; it unties one whose file holds
        # its own lm_head.weight, as FLAN-T5's does, with tie_word_embeddings false.
        state = load_file(str(folder / "model.safetensors"))
        state["lm_head.weight"] = torch.randn_like(state["shared.weight"])
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        document = json.loads((folder / "config.json").read_text())
        document.pop("scale_decoder_outputs", None)
        (folder / "config.json").write_text(json.dumps({**document, "tie_word_embeddings": False}))
    return T5ForConditionalGeneration.from_pretrained(folder).eval()


def source_batch(vocab: int):
    ids = torch.randint(3, vocab, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids = ids.masked_fill(mask == 0, PAD)
    for row, n in zip(ids, mask.sum(1)):
        row[n - 1] = EOS
    return ids, mask


def key_mask(mask):
    return mask.bool()[:, None, None, :]


@pytest.fixture(scope="module", params=list(VERSIONS))
def t5(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5") / f"t5-{request.param}"
    hf = save_t5(folder, request.param)
    return request.param, folder, hf, load_hf_folder(folder)


def test_config_reads_the_version(t5):
    version, _, hf, run = t5
    c = run.config
    assert (c.positions, c.norm, c.norm_type, c.use_final_norm, c.attn_scale, c.bias) == (
        "relative", "pre", "rmsnorm", True, False, False)
    assert (c.attn_width, c.n_layers, c.decoder_layers, c.relative_buckets, c.relative_max_distance) == (
        24, 2, VERSIONS[version]["num_decoder_layers"], 8, 20)
    v10 = version == "v1.0"
    assert (c.gated_ffn, c.activation, c.tie_output, c.scale_output) == (
        (False, "relu", True, True) if v10 else (True, "gelu_tanh", False, False))
    assert hf.config.scale_decoder_outputs == v10
    assert (hf.lm_head.weight.data_ptr() == hf.shared.weight.data_ptr()) == v10


def test_logits_match_transformers_on_padded_batches(t5):
    _, _, hf, run = t5
    vocab = run.config.vocab_size
    src, src_mask = source_batch(vocab)
    tgt = torch.randint(3, vocab, (3, 7))
    tgt[:, 0] = PAD
    tgt_mask = torch.ones(3, 7, dtype=torch.long)
    tgt_mask[2, 5:] = 0
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        memory = run.model.encode(src, key_mask(src_mask))
        logits = run.model.decode(tgt, memory, key_mask(src_mask), key_mask(tgt_mask))
    real_src, real_tgt = src_mask.bool(), tgt_mask.bool()
    assert (memory - expected.encoder_last_hidden_state)[real_src].abs().max() < 1e-4
    assert (logits - expected.logits)[real_tgt].abs().max() < 1e-4
    assert expected.logits.abs().max() > 1  # not a vacuous comparison


def test_framing_follows_the_post_processor(t5):
    _, folder, _, run = t5
    framing = Framing.from_meta(run.meta)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert source_ids(run.tokenizer, "hello world", framing) == raw.encode("hello world").ids
    assert source_ids(run.tokenizer, "hello world", framing)[-1] == EOS
    assert decoder_start(run.tokenizer, framing) == PAD


def hf_greedy_uncached(hf, src, src_mask, steps):
    """Greedy decoding by full forward passes (no cache) of transformers' model."""
    tgt = torch.full((src.size(0), 1), PAD)
    for _ in range(steps):
        logits = hf(src, attention_mask=src_mask, decoder_input_ids=tgt, use_cache=False).logits
        tgt = torch.cat([tgt, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tgt


def test_greedy_tokens_match_transformers(t5):
    version, _, hf, run = t5
    src, src_mask = source_batch(run.config.vocab_size)
    sources = [row[:n].tolist() for row, n in zip(src, src_mask.sum(1))]
    with torch.no_grad():
        if version == "v1.0":  # decoder deeper than the encoder: transformers' generate fails on it
            expected = hf_greedy_uncached(hf, src, src_mask, 12)
        else:
            expected = hf.generate(src, attention_mask=src_mask, do_sample=False, num_beams=1, max_new_tokens=12)
    start = decoder_start(run.tokenizer, Framing.from_meta(run.meta))
    results = generate.generate_seq2seq(run.model, sources, start, stopping=generate.Stopping(end_id=EOS, max_new_tokens=12))
    for result, reference in zip(results, expected.tolist()):
        reference = reference[1:]
        if EOS in reference:
            reference = reference[: reference.index(EOS) + 1]
        assert result.tokens == reference


def test_import_export_import_is_exact(t5, tmp_path):
    version, folder, hf, run = t5
    out = export_hf(run, tmp_path / "exported")
    original, written = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    again = T5ForConditionalGeneration.from_pretrained(out).eval()
    src, src_mask = source_batch(run.config.vocab_size)
    tgt = torch.randint(3, run.config.vocab_size, (3, 5))
    with torch.no_grad():
        assert torch.equal(again(src, attention_mask=src_mask, decoder_input_ids=tgt).logits,
                           hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits)
    reread = load_hf_folder(out)
    assert reread.config == run.config
    assert reread.meta["framing"] == run.meta["framing"]
    ours, back = run.model.state_dict(), reread.model.state_dict()
    assert ours.keys() == back.keys() and all(torch.equal(ours[k], back[k]) for k in ours)


@pytest.mark.parametrize("layout", ["small-t5", "v1.0-tied"])
def test_t5_style_model_trained_here_exports_as_t5(tmp_path, layout):
    config = get_preset("small-t5").replace(vocab_size=60, d_model=32, n_heads=4, d_ff=48, n_decoder_layers=3)
    if layout == "v1.0-tied":
        config = config.replace(gated_ffn=False, activation="relu", tie_output=True, scale_output=True)
    torch.manual_seed(0)
    model = build_model(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    out = export_hf(model, tmp_path / "exported")
    hf = T5ForConditionalGeneration.from_pretrained(out).eval()
    assert hf.config.scale_decoder_outputs == config.scale_output
    src, src_mask = source_batch(60)
    tgt = torch.randint(3, 60, (3, 6))
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        ours = model(src, tgt, key_mask(src_mask))
    assert (ours - expected).abs().max() < 1e-4


def test_paper_model_is_not_a_t5():
    from glassformer.interop.hf_export import export_problems
    from glassformer.interop.hf_folder import family_module

    problems = export_problems(family_module("t5"), get_preset("tiny-seq2seq"), "seq2seq")
    assert "positions='sinusoidal' (T5's positions are a relative bias)" in problems
    assert "attn_scale=true (T5 does not divide the scores by sqrt(d_head))" in problems


# Commands on T5 folders -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5-commands")
    return {version: (root / version, save_t5(root / version, version)) for version in VERSIONS}


def test_trace_shows_the_bias_the_unscaled_scores_and_the_output_scale(folders, capsys):
    from glassformer.cli import main

    assert main(["trace", "--model", str(folders["v1.0"][0]), "the cat", "--target", "a dog"]) == 0
    out = capsys.readouterr().out
    s = len(Tokenizer.from_file(str(folders["v1.0"][0] / "tokenizer.json")).encode("the cat").ids)  # with </s>
    bias_row = next(line for line in out.splitlines() if line.endswith("encoder.position_bias.hook_bias"))
    assert f"[B=1, H=4, S={s}, S={s}]" in bias_row and "a learned number per head and bucket" in bias_row
    assert "([8,4] table, both directions)" in bias_row and "([8,4] table, past keys only)" in out
    assert "not divided by sqrt(D) (T5: Wq absorbs it) + the stack's relative position bias" in out
    assert "(tied to the token embedding), after × d_model^-0.5 = × 0.1768" in out


def test_translate_attention_and_report_on_a_t5_folder(folders, tmp_path, capsys):
    from glassformer.cli import main

    folder, hf = folders["v1.1"]
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    ids = tok("the cat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = hf.generate(ids, do_sample=False, num_beams=1, max_new_tokens=8)
    assert main(["translate", "--model", str(folder), "--max-new-tokens", "8", "--plain", "the cat"]) == 0
    assert capsys.readouterr().out.strip() == tok.decode(expected[0], skip_special_tokens=True).strip()
    assert main(["attention", "--model", str(folder), "--max-steps", "3", "the cat"]) == 0
    assert "encoder self-attention · layer 0 · head 0" in capsys.readouterr().out
    assert main(["report", "--model", str(folder), "--out", str(tmp_path / "r.html"), "--max-steps", "3", "the cat"]) == 0
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_train_init_from_a_t5_folder_then_export_to_transformers(folders, tmp_path, capsys):
    from glassformer.cli import main
    from glassformer.run_folder import load_run

    folder, _ = folders["v1.1"]
    pairs = ["the cat\tcat the", "the dog\tdog the", "a park\tpark a", "hello world\tworld hello"]
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(pairs * 4) + "\n")
    out = tmp_path / "ft"
    assert main(["train", "--data", str(data), "--kind", "seq2seq", "--init", str(folder), "--out", str(out),
                 "--steps", "6", "--eval-every", "6", "--lr", "3e-3", "--warmup", "2", "--no-progress",
                 "--examples", "0"]) == 0
    assert f"init from {folder}: loaded 52 tensors" in capsys.readouterr().out
    run = load_run(out)
    imported = load_hf_folder(folder)
    assert run.config == imported.config.replace(dropout=run.config.dropout)
    assert not torch.equal(run.model.lm_head.proj.weight, imported.model.lm_head.proj.weight)  # it trained
    exported = tmp_path / "hf"
    assert main(["export", "--model", str(out), "--out", str(exported)]) == 0
    assert capsys.readouterr().out == f"wrote {exported}: t5 model of kind seq2seq\n"
    hf = T5ForConditionalGeneration.from_pretrained(exported).eval()
    src, src_mask = source_batch(run.config.vocab_size)
    tgt = torch.randint(3, run.config.vocab_size, (3, 5))
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        assert (run.model(src, tgt, key_mask(src_mask)) - expected).abs().max() < 1e-4


# T5EncoderModel -------------------------------------------------------------------------------------
def test_t5_encoder_model_loads_as_an_encoder_and_exports_back(tmp_path):
    from transformers import T5EncoderModel

    from glassformer.cli import main

    folder = tmp_path / "t5-encoder"
    torch.manual_seed(0)
    tok = t5_tokenizer()
    hf = T5EncoderModel(T5Config(vocab_size=tok.get_vocab_size(), **TINY, **VERSIONS["v1.1"])).eval()
    with torch.no_grad():
        hf.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.normal_(std=1.0)
    hf.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    run = load_hf_folder(folder)
    c = run.config
    assert (run.kind, c.family, c.positions, c.head, c.gated_ffn, c.attn_scale) == (
        "encode", "encoder-only", "relative", "none", True, False)
    src, mask = source_batch(tok.get_vocab_size())
    with torch.no_grad():
        expected = hf(src, attention_mask=mask).last_hidden_state
        ours = run.model(src, key_mask(mask))
    assert (ours - expected)[mask.bool()].abs().max() < 1e-4
    assert source_ids(run.tokenizer, "the cat", Framing.from_meta(run.meta)) == tok.encode("the cat").ids  # text </s>
    out = export_hf(run, tmp_path / "exported")
    original, written = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    again = T5EncoderModel.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(again(src, attention_mask=mask).last_hidden_state, expected)
    # embed mean-pools the encoder output over the text, as sentence-T5 does.
    assert main(["embed", "--model", str(folder), "--pooling", "mean", "the cat"]) == 0
