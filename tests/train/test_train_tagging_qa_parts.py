"""Tagging and QA parts: label alignment, entity F1, QA framing, best span, SQuAD metrics, learnability."""

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers
from torch import nn

from glassformer.config import ModelConfig, get_preset
from glassformer.data.qa import QAExample
from glassformer.data.tasks import TASKS
from glassformer.errors import DataError, UserError
from glassformer.framing import Framing
from glassformer.models import EncoderOnly
from glassformer.models.qa_head import SpanHead
from glassformer.text import SPECIALS, SubwordTokenizer, WordTokenizer
from glassformer.text.specials import ROLES
from glassformer.train.batches import IGNORE, pad
from glassformer.tasks.qa import (
    answer_questions,
    best_span,
    encode_qa,
    frame_qa,
    normalize_answer,
    qa_metrics,
    token_offsets,
)
from glassformer.tasks.tag import (
    align_labels,
    decode_tags,
    entity_f1,
    entity_spans,
    frame_words,
    predict_tags,
    tag_labels,
)

GF = Framing()  # glassformer's own framing: these tokenizers are trained here

X = IGNORE
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
LABEL_IDS = {label: i for i, label in enumerate(LABELS)}
WORDS = ("anna", "berg", "visited", "lima", ".")
TAGS = ("B-PER", "I-PER", "O", "B-LOC", "O")


def word_tokenizer(*extra, lowercase=False):
    return WordTokenizer(SPECIALS + ["anna", "berg", "visited", "lima", ".", "st", *extra], lowercase=lowercase)


def wordpiece_tokenizer():
    """A hand-built WordPiece vocabulary in which "visited" and "lima" split in two."""
    pieces = ["anna", "berg", "visit", "##ed", "li", "##ma", ".", "where", "did", "go", "?"]
    vocab = {t: i for i, t in enumerate(SPECIALS + pieces)}
    hf = HFTokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix="##"))
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece(prefix="##")
    return SubwordTokenizer(hf, dict(zip(ROLES, SPECIALS)))


# Tagging: alignment ------------------------------------------------------------------------
def test_align_labels_word_tokenizer():
    tok = word_tokenizer()
    ids, labels = align_labels(tok, WORDS, TAGS, LABEL_IDS, GF)
    assert ids == [1, 5, 6, 7, 8, 9, 2]
    assert labels == [X, 3, 4, 0, 1, 0, X]
    # "st." is one word of two pieces; its second piece is not scored.
    ids, labels = align_labels(tok, ("st.", "anna"), ("B-PER", "I-PER"), LABEL_IDS, GF)
    assert ids == [1, 10, 9, 5, 2] and labels == [X, 3, X, 4, X]


def test_align_labels_wordpiece():
    tok = wordpiece_tokenizer()
    ids, labels = align_labels(tok, WORDS, TAGS, LABEL_IDS, GF)
    assert [tok.id_to_token(i) for i in ids] == [
        "<start>", "anna", "berg", "visit", "##ed", "li", "##ma", ".", "<end>"
    ]
    assert labels == [X, 3, 4, 0, X, 1, X, 0, X]
    assert frame_words(tok, WORDS, GF)[1] == [1, 2, 3, 5, 7]


def test_align_labels_edge_cases():
    tok = word_tokenizer()
    # A word that encodes to nothing keeps its place as one unknown piece.
    assert frame_words(tok, ("anna", "\u200b"), GF) == ([1, 5, 3, 2], [1, 2])
    with pytest.raises(DataError, match="tag 'B-ORG' is not one of the model's labels: O, B-LOC"):
        align_labels(tok, ("anna",), ("B-ORG",), LABEL_IDS, GF)
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        align_labels(tok, ("anna", "berg"), ("O",), LABEL_IDS, GF)


def test_decode_tags_takes_each_words_first_piece():
    starts = frame_words(wordpiece_tokenizer(), WORDS, GF)[1]
    # Positions:        <s> anna berg visit ##ed li ##ma  .  </s>
    predicted = torch.tensor([0, 3, 4, 0, 2, 1, 4, 0, 2])
    assert decode_tags(predicted, starts, LABELS) == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert decode_tags([0, 1, 2, 0, 0, 0, 0], [1, 2, 5], LABELS) == ["B-LOC", "I-LOC", "O"]


def test_tag_labels_order():
    assert tag_labels([("B-PER", "O"), ("B-LOC", "I-LOC"), ("B-ORG",)]) == [
        "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"
    ]


# Tagging: entities and F1 ------------------------------------------------------------------
def test_entity_spans():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)
    ]
    # Broken BIO, as a model may predict it, read as conlleval does.
    assert entity_spans(["I-PER", "I-PER", "I-LOC", "O", "I-ORG"]) == [("PER", 0, 2), ("LOC", 2, 3), ("ORG", 4, 5)]
    assert entity_spans(["O", "O"]) == [] and entity_spans([]) == []
    with pytest.raises(ValueError, match="tag 'X-PER' at 1 is not a BIO tag"):
        entity_spans(["O", "X-PER"])


def test_entity_f1_exact_numbers():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    predicted = [
        ["B-PER", "I-PER", "O", "B-LOC"],  # both right
        ["B-ORG", "I-ORG", "O"],           # ORG span too long, PER missed
    ]
    scores = entity_f1(gold, predicted)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(4 / 7)
    # The right span with the wrong type counts as wrong.
    assert entity_f1([["B-PER"]], [["B-LOC"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_f1([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == 1.0
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_f1([["O", "O"]], [["O"]])


# QA: framing -------------------------------------------------------------------------------
def test_frame_qa_word_tokenizer():
    tok = word_tokenizer("where", "did", "go", "?", "to", "new")
    context = "anna berg visited new lima ."
    feature = frame_qa(tok, "where did anna go ?", context, max_len=64, framing=GF, answer=(18, 26))
    words = ["<start>", "where", "did", "anna", "go", "?", "<end>", "anna", "berg", "visited", "new", "lima", ".", "<end>"]
    assert [tok.id_to_token(i) for i in feature.ids] == words
    assert feature.segments == [0] * 7 + [1] * 7
    assert (feature.context_start, feature.context_end) == (7, 13)
    assert (feature.start, feature.end, feature.truncated) == (10, 11, 0)
    assert feature.offsets[:7] == [None] * 7 and feature.offsets[-1] is None
    assert feature.offsets[7:13] == [(0, 4), (5, 9), (10, 17), (18, 21), (22, 26), (27, 28)]


def test_frame_qa_wordpiece_offsets():
    tok = wordpiece_tokenizer()
    context = "anna visited lima."
    assert token_offsets(tok, context) == (
        [5, 7, 8, 9, 10, 11], [(0, 4), (5, 10), (10, 12), (13, 15), (15, 17), (17, 18)]
    )
    feature = frame_qa(tok, "where did anna go?", context, max_len=32, framing=GF, answer=(13, 17))
    assert [tok.id_to_token(i) for i in feature.ids[feature.start:feature.end + 1]] == ["li", "##ma"]
    assert (feature.start, feature.end) == (10, 11)


def test_token_offsets_lowercasing_word_tokenizer():
    tok = word_tokenizer(lowercase=True)
    assert token_offsets(tok, "Anna  BERG visited Lima.") == ([5, 6, 7, 8, 9], [(0, 4), (6, 10), (11, 18), (19, 23), (23, 24)])


def test_frame_qa_truncation_policy():
    tok = word_tokenizer("where", "did", "go", "?")
    context = "anna visited lima . berg visited lima ."
    # Question 5 tokens + 3 specials leaves 4 context tokens: "anna visited lima ."
    kept = frame_qa(tok, "where did anna go ?", context, max_len=12, framing=GF, answer=(13, 17))
    assert len(kept.ids) == 12 and kept.truncated == 4 and (kept.start, kept.end) == (9, 9)
    cut = frame_qa(tok, "where did anna go ?", context, max_len=12, framing=GF, answer=(33, 37))
    assert cut.start is None and cut.end is None
    examples = [
        QAExample(context, "where did anna go ?", 13, "lima"),
        QAExample(context, "where did berg go ?", 33, "lima"),
        QAExample(context, "where did berg go ? where did berg go ?", 33, "lima"),
    ]
    features, dropped = encode_qa(examples, tok, max_len=12, framing=GF)
    assert [(f.start, f.end) for f in features] == [(9, 9)] and dropped == 2
    with pytest.raises(UserError, match="a question of 10 tokens leaves no room for the context"):
        frame_qa(tok, examples[2].question, context, max_len=12, framing=GF)
    with pytest.raises(UserError, match="the context ' ' has no tokens to answer from"):
        frame_qa(tok, "where did anna go ?", " ", max_len=12, framing=GF)


# QA: span choice and metrics --------------------------------------------------------------
def test_best_span_constraints():
    start = torch.tensor([0.0, 1.0, 0.0, 5.0, 0.0])
    end = torch.tensor([0.0, 4.0, 0.0, 0.0, 3.0])
    # Argmax end (1) precedes argmax start (3): the best ordered span is (3, 4).
    assert best_span(start, end, max_answer_len=30) == (3, 4)
    # Two tokens at most: (3, 4) still fits; one token only: (1, 1) and (3, 3) tie at 5, the earlier wins.
    assert best_span(start, end, max_answer_len=2) == (3, 4)
    assert best_span(start, end, max_answer_len=1) == (1, 1)
    allowed = torch.tensor([False, True, True, False, False])
    assert best_span(start, end, 30, allowed) == (1, 1)
    assert best_span(torch.zeros(4), torch.zeros(4), 3) == (0, 0)
    with pytest.raises(ValueError, match="no span is possible"):
        best_span(start, end, 30, torch.zeros(5, dtype=torch.bool))


def test_squad_normalisation_and_metrics():
    assert normalize_answer("The  Baker's, an  old-town\tbaker!") == "bakers oldtown baker"
    assert normalize_answer("Theatre") == "theatre"
    scores = qa_metrics(
        ["the Baker", "a baker , sir", "kan", "", "nurse"],
        ["baker", "baker", ["kan holm", "kan"], "the", ["pilot", "judge"]],
    )
    # EM: 1, 0, 1 (best of two golds), 1 (both normalise to empty), 0.
    assert scores["exact_match"] == pytest.approx(3 / 5)
    # F1: 1, 2/3 (P 1/2, R 1), 1, 1, 0.
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 1 + 1 + 0) / 5)
    assert qa_metrics(["kan"], ["kan holm"]) == {"exact_match": 0.0, "f1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="2 predictions but 1 answers"):
        qa_metrics(["a", "b"], ["a"])


def test_span_head_shape_and_rows():
    config = ModelConfig(family="encoder-only", vocab_size=20, d_model=8, n_heads=2, d_ff=16, n_layers=1)
    head = SpanHead(config)
    hidden = torch.randn(3, 5, 8)
    logits = head(hidden)
    assert logits.shape == (3, 2, 5)
    flat = hidden @ head.qa_outputs.weight.T + head.qa_outputs.bias  # [B, T, 2]
    torch.testing.assert_close(logits[:, 0], flat[..., 0])
    torch.testing.assert_close(logits[:, 1], flat[..., 1])
    # The token cross-entropy scores (start, end) targets [B, 2] directly.
    targets = torch.tensor([[1, 2], [0, 0], [4, 4]])
    loss = F.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1))
    assert loss.shape == () and torch.isfinite(loss)


# Learnability ------------------------------------------------------------------------------
def tiny_config(vocab_size, **changes):
    return ModelConfig(
        family="encoder-only", vocab_size=vocab_size, d_model=64, n_heads=4, d_ff=128, n_layers=2,
        max_len=64, dropout=0.0, norm="pre", **changes,
    )


def train(model, batches, steps, lr=3e-3):
    """Adam on the cross-entropy of batches(step) -> (inputs, targets), logits [..., classes]."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        inputs, targets = batches()
        logits = model(*inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


class SpanModel(nn.Module):
    """EncoderOnly's hidden states under a SpanHead, until the head is registered as "qa"."""

    def __init__(self, config):
        super().__init__()
        self.encoder = EncoderOnly(config)
        self.head = SpanHead(config)

    def forward(self, ids, mask=None, segments=None):
        return self.head(self.encoder.encode(ids, mask, segments))


@pytest.mark.slow
def test_toy_ner_is_learnable():
    torch.manual_seed(0)
    s = TASKS["toy-ner"].splits(0)
    tok = WordTokenizer.train([e.text for e in s.train])
    labels = tag_labels([e.tags for e in s.train])
    label_ids = {label: i for i, label in enumerate(labels)}
    rows = [align_labels(tok, e.tokens, e.tags, label_ids, GF) for e in s.train]
    model = EncoderOnly(tiny_config(tok.vocab_size, head="tag", n_labels=len(labels)))
    generator = torch.Generator().manual_seed(0)

    def batches():
        picked = torch.randint(len(rows), (32,), generator=generator).tolist()
        ids = pad([rows[i][0] for i in picked], tok.pad_id)
        return (ids,), pad([rows[i][1] for i in picked], IGNORE)

    train(model, batches, steps=300)
    predicted = predict_tags(model, tok, labels, [e.tokens for e in s.test], max_len=64, framing=GF)
    scores = entity_f1([e.tags for e in s.test], predicted)
    assert scores["f1"] >= 0.8, scores  # measured 0.89


@pytest.mark.slow
def test_toy_qa_is_learnable():
    torch.manual_seed(0)
    s = TASKS["toy-qa"].splits(0)
    tok = WordTokenizer.train([f"{e.context} {e.question}" for e in s.train])
    features, dropped = encode_qa(s.train, tok, max_len=64, framing=GF)
    assert dropped == 0
    model = SpanModel(tiny_config(tok.vocab_size, n_segments=2))
    generator = torch.Generator().manual_seed(0)

    def batches():
        picked = [features[i] for i in torch.randint(len(features), (32,), generator=generator).tolist()]
        ids = pad([f.ids for f in picked], tok.pad_id)
        segments = pad([f.segments for f in picked], 0)
        return (ids, None, segments), torch.tensor([[f.start, f.end] for f in picked])

    train(model, batches, steps=300)
    answers = answer_questions(model, tok, [e.question for e in s.test], [e.context for e in s.test], 64, GF, 5)
    scores = qa_metrics(answers, [e.answer_text for e in s.test])
    assert scores["exact_match"] >= 0.6, scores  # measured 0.825


def test_the_qa_kind_keeps_a_decoder_only_preset_and_makes_a_seq2seq_preset_an_encoder():
    """A sequence-to-sequence preset would give a span model that no Hugging Face class holds, so it
    trains as an encoder (question and context as two segments); BART's span head is fine-tuned
    from an imported BART folder (`--init`), whose family the kind keeps."""
    from glassformer.tasks import KINDS
    from glassformer.train.config import TrainConfig
    from glassformer.train.setup import model_config_for

    tok = WordTokenizer.train(["a question and a context"])
    fitted = {p: model_config_for(TrainConfig(task="toy-qa", preset=p), "qa", None, tok, tok, [])
              for p in ("tiny-lm", "tiny-seq2seq")}
    assert (fitted["tiny-lm"].family, fitted["tiny-lm"].head, fitted["tiny-lm"].n_segments) == ("decoder-only", "qa", 0)
    assert (fitted["tiny-seq2seq"].family, fitted["tiny-seq2seq"].n_segments) == ("encoder-only", 2)
    bart_like = get_preset("tiny-seq2seq")
    assert KINDS["qa"].family_for(bart_like, fine_tune=True) == "encoder-decoder"
    assert KINDS["qa"].family_for(bart_like) == "encoder-only"


@pytest.mark.parametrize("family", ["decoder-only", "encoder-decoder"])
def test_a_decoder_span_head_trains_through_the_qa_kind(family):
    """Decoder-only and encoder-decoder span heads (GPT-2's, LLaMA's and BART's), their batches read
    by span_logits as the family reads a pair, train: the loss on the same 32 examples falls."""
    from glassformer.models import build_model
    from glassformer.tasks import KINDS
    from glassformer.train.loss import cross_entropy, model_outputs

    torch.manual_seed(0)
    s = TASKS["toy-qa"].splits(0)
    tok = WordTokenizer.train([f"{e.context} {e.question}" for e in s.train[:500]])
    kind = KINDS["qa"]
    preset = get_preset("tiny-lm" if family == "decoder-only" else "tiny-seq2seq")
    config = preset.replace(head="qa", vocab_size=tok.vocab_size, tgt_vocab_size=None, pad_id=tok.pad_id)
    model = build_model(config.replace(n_layers=1, d_model=32, d_ff=64))
    encoded = kind.encode(s.train[:32], tok, tok, [], config.max_len, GF)
    batch = kind.batch(encoded, list(range(32)), tok, tok, GF)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = cross_entropy(model_outputs(model, batch), batch.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: 4.52 -> 0.017 (tiny-lm), 3.95 -> 0.62 (tiny-seq2seq)
    assert losses[-1] < 0.5 * losses[0], losses
