"""BERT from and to Hugging Face folders: every head, MiniLM hidden states, export, and `embed`."""

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    PreTrainedTokenizerFast,
)

from glassformer.cli import main  # noqa: E402
from glassformer.tasks.encode import sentence_embeddings  # noqa: E402
from glassformer.config import get_preset  # noqa: E402
from glassformer.framing import Framing, sequence_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from glassformer.models import build_model  # noqa: E402
from glassformer.load import load_model
from glassformer.run_folder import save_run  # noqa: E402
from glassformer.text import SubwordTokenizer  # noqa: E402

transformers.logging.set_verbosity_error()
WORDS = "the cat sat on mat a dog ran in park hello world again and is good bad day night play ##s ##ed ##ing".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz.,!?", *WORDS]
TEXTS = ["the cat sat on the mat", "hello world", "a dog played in the park again and again", "good night"]
TINY = dict(
    num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=37, vocab_size=99,
    max_position_embeddings=64, initializer_range=0.2,
)
# all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads, 1536 feed-forward), with a small vocabulary.
MINILM = dict(
    num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536, vocab_size=99,
    max_position_embeddings=128,
)
HEADS = {
    "encode": BertModel, "mlm": BertForMaskedLM,
    "classify": BertForSequenceClassification, "tag": BertForTokenClassification,
}


def wordpiece(path):
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path))


def save_bert(folder, cls=BertModel, **settings):
    torch.manual_seed(0)
    model = cls(BertConfig(**{**TINY, **settings})).eval()
    model.save_pretrained(folder)
    wordpiece(folder / "tokenizer.json")
    return model


def batch():
    """Ids [CLS] ... [SEP] with padding, and segment ids with a second segment in row 0."""
    ids = torch.randint(5, 99, (3, 10))
    ids[:, 0] = 2
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    segments = torch.zeros(3, 10, dtype=torch.long)
    segments[0, 5:] = 1
    return ids.masked_fill(mask == 0, 0), mask, segments


@pytest.mark.parametrize("kind", list(HEADS))
def test_every_head_matches_transformers_with_padding(tmp_path, kind):
    labels = {"id2label": {0: "NEG", 1: "NEU", 2: "POS"}} if kind in ("classify", "tag") else {}
    hf = save_bert(tmp_path / kind, HEADS[kind], **labels)
    run = load_model(tmp_path / kind)
    assert run.kind == kind
    assert run.labels == (["NEG", "NEU", "POS"] if labels else [])
    ids, mask, segments = batch()
    real = mask.bool()
    with torch.no_grad():
        out = hf(ids, attention_mask=mask, token_type_ids=segments)
        ours = run.model(ids, real[:, None, None, :], segments)
        base = hf if kind == "encode" else hf.bert
        hidden = base(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        assert (run.model.encode(ids, real[:, None, None, :], segments) - hidden).abs().max() < 1e-4
    if kind == "encode":
        assert (ours - out.last_hidden_state).abs().max() < 1e-4
    elif kind == "classify":
        assert (ours - out.logits).abs().max() < 1e-4
    else:
        assert (ours - out.logits)[real].abs().max() < 1e-4


def test_minilm_sized_bertmodel_hidden_states(tmp_path):
    hf = save_bert(tmp_path / "minilm", BertModel, **MINILM)
    run = load_hf_folder(tmp_path / "minilm")
    assert run.kind == "encode" and run.config.pooler and run.config.head == "none"
    assert (run.config.d_model, run.config.n_heads, run.config.n_layers, run.config.d_ff) == (384, 12, 6, 1536)
    ids, mask, _ = batch()
    with torch.no_grad():
        hidden = hf(ids, attention_mask=mask).last_hidden_state
        ours = run.model.encode(ids, mask.bool()[:, None, None, :])
    assert (ours - hidden).abs().max() < 1e-4


def test_framing_and_tokenizer_match_transformers(tmp_path):
    save_bert(tmp_path / "bert", BertForMaskedLM)
    run = load_model(tmp_path / "bert")
    assert isinstance(run.tokenizer, SubwordTokenizer)
    t = run.tokenizer
    assert (t.pad_id, t.unk_id, t.start_id, t.end_id, t.mask_id) == (0, 1, 2, 3, 4)
    reference = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "bert" / "tokenizer.json"))
    for text in TEXTS:
        assert sequence_ids(t, text, Framing.from_meta(run.meta)) == reference(text)["input_ids"]


def test_pretraining_checkpoint_loads_as_mlm_without_the_next_sentence_head(tmp_path):
    hf = save_bert(tmp_path / "pre", BertForPreTraining)
    run = load_hf_folder(tmp_path / "pre")
    assert run.kind == "mlm" and run.config.pooler
    assert run.meta["hf_dropped"] == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    ids, mask, segments = batch()
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, token_type_ids=segments).prediction_logits
        ours = run.model(ids, mask.bool()[:, None, None, :], segments)
    assert (ours - expected)[mask.bool()].abs().max() < 1e-4


def test_original_style_checkpoint_with_legacy_names(tmp_path):
    """A pickled BertModel state as the first BERT files have it: no "bert." prefix,
    LayerNorm.gamma/beta, and a position_ids buffer."""
    hf = save_bert(tmp_path / "new", BertModel)
    old = tmp_path / "old"
    old.mkdir()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in hf.state_dict().items()}
    state["embeddings.position_ids"] = torch.arange(64)[None]
    torch.save(state, old / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json"):
        (old / name).write_text((tmp_path / "new" / name).read_text())
    run = load_hf_folder(old)
    ids, mask, segments = batch()
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        ours = run.model.encode(ids, mask.bool()[:, None, None, :], segments)
    assert (ours - expected).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["encode", "mlm", "classify"])
def test_export_loads_in_transformers_and_round_trips_exactly(tmp_path, kind):
    hf = save_bert(tmp_path / "bert", HEADS[kind], num_labels=2)
    run = load_hf_folder(tmp_path / "bert")
    out = export_hf(run, tmp_path / "exported")
    again = HEADS[kind].from_pretrained(out).eval()
    ids, mask, segments = batch()
    with torch.no_grad():
        a = again(ids, attention_mask=mask, token_type_ids=segments)
        b = hf(ids, attention_mask=mask, token_type_ids=segments)
    assert torch.equal(a[0], b[0])
    original, written = load_file(str(tmp_path / "bert" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    reread = load_hf_folder(out)
    assert (reread.kind, reread.labels) == (run.kind, run.labels)
    assert reread.tokenizer.to_dict() == run.tokenizer.to_dict()
    ours, back = run.model.state_dict(), reread.model.state_dict()
    assert ours.keys() == back.keys() and all(torch.equal(ours[k], back[k]) for k in ours)


def test_trained_here_classifier_exports_as_bert(tmp_path):
    # Without segments the export adds one all-zero token-type row; sinusoidal positions
    # travel as a learned table with the same values.
    config = get_preset("tiny-encoder").replace(
        vocab_size=99, norm="post", scale_embeddings=False, embedding_norm=True, activation="gelu",
        pooler=True, head="classify", n_labels=3,
    )
    model = build_model(config).eval()
    out = export_hf(model, tmp_path / "exported")
    hf = BertForSequenceClassification.from_pretrained(out).eval()
    ids, mask, _ = batch()
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask).logits
        ours = model(ids, mask.bool()[:, None, None, :])
    assert (ours - expected).abs().max() < 1e-4


# embed ----------------------------------------------------------------------------------------------
def reference_embeddings(hf_model, folder, texts):
    """sentence-transformers' recipe: BertModel, mean over attention_mask, L2-normalise."""
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="[PAD]")
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf_model(**encoded).last_hidden_state
    weights = encoded["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


def parse_rows(text):
    return torch.tensor([[float(x) for x in line.split()] for line in text.strip().splitlines()])


def test_embed_matches_mean_pooled_bertmodel(tmp_path, capsys):
    hf = save_bert(tmp_path / "minilm", BertModel)
    expected = reference_embeddings(hf, tmp_path / "minilm", TEXTS)
    ours = sentence_embeddings(load_model(tmp_path / "minilm"), TEXTS)
    assert ours.shape == (4, 32) and (ours - expected).abs().max() < 1e-5
    assert main(["embed", "--model", str(tmp_path / "minilm"), *TEXTS]) == 0
    printed = parse_rows(capsys.readouterr().out)
    assert printed.shape == (4, 32)
    assert torch.allclose(printed.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert (printed - expected).abs().max() < 1e-5


def test_embed_similarity_is_a_symmetric_cosine_matrix(tmp_path, capsys):
    hf = save_bert(tmp_path / "minilm", BertModel)
    assert main(["embed", "--model", str(tmp_path / "minilm"), "--similarity", *TEXTS]) == 0
    out = capsys.readouterr().out
    matrix = parse_rows(out)
    assert matrix.shape == (4, 4) and torch.equal(matrix, matrix.T)
    assert all(line.split()[i] == "1.000" for i, line in enumerate(out.strip().splitlines()))
    expected = reference_embeddings(hf, tmp_path / "minilm", TEXTS)
    assert (matrix - expected @ expected.T).abs().max() <= 0.0005 + 1e-6


def test_embed_works_on_a_run_trained_here(tmp_path):
    tokenizer = SubwordTokenizer.train(TEXTS * 3, 60, model="wordpiece")
    config = get_preset("tiny-encoder").replace(vocab_size=tokenizer.vocab_size, head="mlm")
    model = build_model(config).eval()
    save_run(tmp_path / "run", model, config, "mlm", tokenizer)
    ours = sentence_embeddings(load_model(tmp_path / "run"), TEXTS[:2])
    # By hand: <start> text <end>, one at a time, so no padding is involved.
    for text, row in zip(TEXTS[:2], ours):
        ids = torch.tensor([[tokenizer.start_id, *tokenizer.encode(text), tokenizer.end_id]])
        with torch.no_grad():
            mean = model.encode(ids).mean(1)[0]
        assert (row - mean / mean.norm()).abs().max() < 1e-5
