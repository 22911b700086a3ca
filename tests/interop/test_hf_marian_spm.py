"""opus-mt folders without tokenizer.json: source.spm / target.spm + vocab.json read as transformers'
MarianTokenizer reads them (the same ids for source and target text), logits on its batches, and
the export writing a tokenizer.json that PreTrainedTokenizerFast reads to the same ids."""

import io
import json
import shutil

import pytest
import torch

spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")
from transformers import MarianConfig, MarianMTModel, MarianTokenizer, PreTrainedTokenizerFast  # noqa: E402

from glassformer.errors import UserError  # noqa: E402
from glassformer.framing import Framing, decoder_start, source_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # MarianTokenizer's own note
ENGLISH = ["the cat sat on the mat", "a dog ran in the park", "she reads a book every night",
           "we like green tea and cake", "the weather is cold today", "my brother plays the piano"] * 4
GERMAN = ["die katze sitzt auf der matte", "ein hund rennt im park", "sie liest jede nacht ein buch",
          "wir mögen grünen tee und kuchen", "das wetter ist heute kalt", "mein bruder spielt klavier"] * 4
# Known pieces, unknown letters and accents, runs of spaces, a tab, the NFKC ligature "ﬁ", </s> in the text.
SENTENCES = ["the cat sat on the mat", "  Unknown   words, Ünïcödé — ﬁne ½ and  spaces  ", "grünen tee\tund kuchen",
             "the </s> dog", "", "ein hund rennt im park"]


def train_spm(lines, size):
    """A unigram SentencePiece model as opus-mt's: </s> 0, <unk> 1, no <s>, no <pad>."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=size, model_type="unigram", eos_id=0, unk_id=1,
        bos_id=-1, pad_id=-1, character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    return out.getvalue()


def joint_vocab(*models):
    """vocab.json as Marian's: every piece of both models once, then <pad>."""
    vocab = {}
    for model in models:
        processor = spm.SentencePieceProcessor(model_proto=model)
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def save_opus(folder, source, target):
    """An opus-mt folder: MarianMTModel weights, the two .spm models, vocab.json, tokenizer_config.json."""
    folder.mkdir(parents=True)
    (folder / "source.spm").write_bytes(source)
    (folder / "target.spm").write_bytes(target)
    vocab = joint_vocab(source, target)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"))
    tok.save_pretrained(folder)
    pad = vocab["<pad>"]
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_position_embeddings=64, activation_function="swish", scale_embedding=True, init_std=0.2,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=None,
    )
    model = MarianMTModel(config).eval()
    model.save_pretrained(folder)
    assert not (folder / "tokenizer.json").exists()
    return model, MarianTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def opus(tmp_path_factory):
    english, german = train_spm(ENGLISH, 40), train_spm(GERMAN, 40)
    assert english != german
    root = tmp_path_factory.mktemp("opus")
    two = save_opus(root / "en-de", english, german)
    one = save_opus(root / "en-en", english, english)
    return root, two, one


def test_ids_match_marian_tokenizer_for_source_and_target_text(opus):
    root, (_, reference), _ = opus
    run = load_hf_folder(root / "en-de")
    framing = Framing.from_meta(run.meta)
    assert run.tokenizer is not run.target_tokenizer
    for text in SENTENCES:
        assert source_ids(run.tokenizer, text, framing) == reference(text)["input_ids"], text
        # A target text is the target model's pieces, ending with </s> as the labels do.
        assert run.target_tokenizer.encode(text) + [0] == reference(text_target=text)["input_ids"], text
    assert decoder_start(run.tokenizer, framing) == reference.pad_token_id
    ids = reference("the cat sat on the mat")["input_ids"]
    assert run.target_tokenizer.decode(ids) == reference.decode(ids, skip_special_tokens=True)


def test_logits_match_transformers_on_tokenized_batches(opus):
    root, (hf, reference), _ = opus
    run = load_hf_folder(root / "en-de")
    batch = reference(SENTENCES[:3], text_target=SENTENCES[3:], padding=True, return_tensors="pt")
    labels = batch["labels"]
    start = torch.full((labels.size(0), 1), reference.pad_token_id)
    tgt = torch.cat([start, labels[:, :-1]], 1)
    tgt_mask = torch.cat([torch.ones_like(start), (labels != reference.pad_token_id)[:, :-1].long()], 1)
    src_mask = batch["attention_mask"]
    with torch.no_grad():
        expected = hf(batch["input_ids"], attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask).logits
        memory = run.model.encode(batch["input_ids"], src_mask.bool()[:, None, None, :])
        logits = run.model.decode(tgt, memory, src_mask.bool()[:, None, None, :], tgt_mask.bool()[:, None, None, :])
    assert (logits - expected)[tgt_mask.bool()].abs().max() < 1e-4


def test_export_writes_a_tokenizer_json_with_the_same_ids(opus, tmp_path):
    root, _, (hf, reference) = opus
    run = load_hf_folder(root / "en-en")
    assert run.tokenizer is run.target_tokenizer  # one .spm for both sides: one tokenizer
    out = export_hf(run, tmp_path / "exported")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    for text in SENTENCES:
        assert fast(text)["input_ids"] == reference(text)["input_ids"], text
    again = load_hf_folder(out)
    assert again.tokenizer.to_dict() == run.tokenizer.to_dict()
    ours, back = run.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(ours[k], back[k]) for k in ours)
    with pytest.raises(UserError, match="separate source and target tokenizers"):
        export_hf(load_hf_folder(root / "en-de"), tmp_path / "two")


def test_an_incomplete_folder_is_one_line(opus, tmp_path):
    root = opus[0]
    folder = tmp_path / "broken"
    shutil.copytree(root / "en-de", folder)
    (folder / "vocab.json").unlink()
    with pytest.raises(UserError, match="source.spm without vocab.json") as error:
        load_hf_folder(folder)
    assert "\n" not in str(error.value)
    shutil.copy(root / "en-de" / "vocab.json", folder)
    (folder / "source.spm").write_bytes(b"\xff\xff\xff")
    with pytest.raises(UserError, match="source.spm is not a readable SentencePiece model"):
        load_hf_folder(folder)
