"""RoBERTa and DistilBERT folders, and BERT's question-answering class, from and to Hugging Face:
every head class's outputs on padded batches, framing from the tokenizer, exact round trips.
DistilBertForSequenceClassification's pre_classifier + ReLU is a pooler with pooler_activation "relu"."""

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors

transformers = pytest.importorskip("transformers")

from glassformer.errors import UserError  # noqa: E402
from glassformer.framing import Framing, sequence_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402

transformers.logging.set_verbosity_error()
WORDS = "the cat sat on mat a dog ran in park hello world again and".split()
SPECIALS = {
    "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # pad 1: positions start at 2
    "distilbert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
}
PAD = {"roberta": 1, "distilbert": 0, "bert": 0}
CLASSES = {
    "roberta": ["RobertaModel", "RobertaForMaskedLM", "RobertaForSequenceClassification",
                "RobertaForTokenClassification", "RobertaForQuestionAnswering"],
    "distilbert": ["DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
                   "DistilBertForTokenClassification", "DistilBertForQuestionAnswering"],
    "bert": ["BertForQuestionAnswering"],
}
CASES = [(family, name) for family, names in CLASSES.items() for name in names]


def config_of(family, name):
    labels = 2 if name.endswith("QuestionAnswering") else 3  # qa_outputs has num_labels outputs
    vocab = len(SPECIALS[family]) + len(WORDS)
    if family == "distilbert":
        return transformers.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                             max_position_embeddings=40, num_labels=labels, initializer_range=0.2)
    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  num_labels=labels, initializer_range=0.2, pad_token_id=PAD[family])
    if family == "roberta":
        return transformers.RobertaConfig(**common, max_position_embeddings=42, type_vocab_size=1,
                                          bos_token_id=0, eos_token_id=2)
    return transformers.BertConfig(**common, max_position_embeddings=40)


def save(folder, family, name):
    torch.manual_seed(0)
    model = getattr(transformers, name)(config_of(family, name)).eval()
    with torch.no_grad():  # random LayerNorms and biases too, so that every tensor shows
        for n, p in model.named_parameters():
            if "LayerNorm" in n or "layer_norm" in n or n.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    specials = SPECIALS[family]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token=specials[3 if family == "roberta" else 1]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    if family == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    else:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(folder / "tokenizer.json"))
    return model


def batch(family):
    pad = PAD[family]
    ids = torch.randint(5, 5 + len(WORDS), (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    return ids.masked_fill(mask == 0, pad), mask


def outputs(name, out):
    if name.endswith("Model"):
        return out.last_hidden_state
    if name.endswith("QuestionAnswering"):
        return torch.stack([out.start_logits, out.end_logits], dim=1)  # [B, 2, T] as ours
    return out.logits


@pytest.mark.parametrize("family, name", CASES)
def test_outputs_match_transformers_and_round_trip_exactly(tmp_path, family, name):
    hf = save(tmp_path / "hf", family, name)
    run = load_hf_folder(tmp_path / "hf")
    ids, mask = batch(family)
    with torch.no_grad():
        expected = outputs(name, hf(input_ids=ids, attention_mask=mask))
        ours = run.model(ids, mask.bool()[:, None, None, :])
    assert ours.shape == expected.shape
    real = mask.bool()
    if name.endswith("SequenceClassification"):
        assert (ours - expected).abs().max() < 1e-4
    elif name.endswith("QuestionAnswering"):
        assert (ours - expected).transpose(1, 2)[real].abs().max() < 1e-4
    else:
        assert (ours - expected)[real].abs().max() < 1e-4
    # Framed as the tokenizer's post-processor frames it.
    raw = Tokenizer.from_file(str(tmp_path / "hf" / "tokenizer.json"))
    assert sequence_ids(run.tokenizer, "the cat sat", Framing.from_meta(run.meta)) == raw.encode("the cat sat").ids

    out = export_hf(run, tmp_path / "exported")
    original, written = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    again = getattr(transformers, name).from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(outputs(name, again(input_ids=ids, attention_mask=mask)), expected)
    reread = load_hf_folder(out)
    assert (reread.kind, reread.labels, reread.meta["framing"]) == (run.kind, run.labels, run.meta["framing"])
    theirs, back = run.model.state_dict(), reread.model.state_dict()
    assert theirs.keys() == back.keys() and all(torch.equal(theirs[k], back[k]) for k in theirs)


def test_distilbert_classifier_has_a_relu_pooler_which_bert_cannot_hold(tmp_path):
    hf = save(tmp_path / "hf", "distilbert", "DistilBertForSequenceClassification")
    run = load_hf_folder(tmp_path / "hf")
    assert (run.kind, run.config.pooler, run.config.pooler_activation) == ("classify", True, "relu")
    ids, mask = batch("distilbert")
    with torch.no_grad():
        dense = hf.pre_classifier(hf.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])
        pooled = run.model.pooled(run.model.encode(ids, mask.bool()[:, None, None, :]))
    assert (dense < 0).any()  # so that ReLU and tanh differ here
    assert (pooled - dense.relu()).abs().max() < 1e-5
    # A bare model has no meta naming DistilBERT: it goes to BERT, whose pooler is tanh.
    with pytest.raises(UserError, match=r"pooler_activation='relu' \(BERT's pooler is dense \+ tanh\)"):
        export_hf(run.model, tmp_path / "as-bert")
