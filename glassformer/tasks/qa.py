"""Extractive question answering: framing with segments, answer spans as token positions, metrics.

A question and its context are framed as
    <start> question <end> context <end>      segments 0 ... 0 1 ... 1
(BERT's [CLS] question [SEP] context [SEP]), <start> and <end> being the run's framing of a
text (`sequence_prefix` and `sequence_suffix`). The answer's character span in the context is
mapped to the first and last context tokens it overlaps. A context too long for max_len is
cut at its end (the question is always kept whole); a training example whose answer was
cut away, wholly or partly, is dropped and counted, never trained on a wrong span.

The kind "qa" (`QuestionAnswering`, at the end) reads JSON lines of question, context and answer.
It trains an encoder (BERT's span head) unless the preset is a decoder-only or encoder-decoder
model: each family then reads the framed pair as Hugging Face's ...ForQuestionAnswering classes do
(`span_logits`), a decoder-only model causally (GPT-2, LLaMA), an encoder-decoder with the pair
as its source and, shifted right, as its decoder's input (BART); only an encoder reads segments.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.data.qa import QAExample, iter_qa, read_qa
from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start, sequence_prefix, sequence_suffix
from glassformer.tasks.kind import Kind
from glassformer.text import SubwordTokenizer, Tokenizer
from glassformer.train.batches import Batch, Encoded, pad

# SQuAD's official script allows answers up to 30 tokens long.
MAX_ANSWER_LEN = 30
QUESTION_SEGMENT, CONTEXT_SEGMENT = 0, 1
# What SQuAD's answer normalisation removes.
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def token_offsets(tokenizer: Tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids of text and each token's (start, end) character offsets in text, end exclusive.

    Subword tokenizers give the `tokenizers` library's offsets; word and character
    tokenizers' pieces are substrings of the text, found left to right.

    Args:
        tokenizer: any tokenizer.
        text: the text to encode (no special tokens are added).
    """
    if isinstance(tokenizer, SubwordTokenizer):
        encoding = tokenizer.hf_tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.ids), [tuple(o) for o in encoding.offsets]
    pieces = tokenizer.tokenize(text)
    lowered = text.lower()
    # Lowercasing can change a string's length ("İ"); then only an exact-case search is safe.
    haystack = lowered if getattr(tokenizer, "lowercase", False) and len(lowered) == len(text) else text
    offsets, position = [], 0
    for piece in pieces:
        found = haystack.find(piece, position)
        if found < 0:
            raise ValueError(f"cannot find the piece {piece!r} of {text[:40]!r} in the text")
        offsets.append((found, found + len(piece)))
        position = found + len(piece)
    return tokenizer.encode(text), offsets


@dataclass(frozen=True)
class QAFeature:
    """A framed question and context, with the answer's token positions when known.

    Args:
        ids: [T] <start> question <end> context <end>.
        segments: [T] 0 up to and including the first <end>, 1 after it.
        offsets: [T] each context token's (start, end) characters in the context; None
            for the question and the specials.
        context_start: position of the first context token.
        context_end: position just past the last context token kept (the final <end>).
        start: the answer's first token position, or None (no answer given, or cut away).
        end: the answer's last token position (inclusive), or None.
        truncated: context tokens cut off to fit max_len.
    """

    ids: list[int]
    segments: list[int]
    offsets: list[tuple[int, int] | None]
    context_start: int
    context_end: int
    start: int | None = None
    end: int | None = None
    truncated: int = 0


def frame_qa(
    tokenizer: Tokenizer, question: str, context: str, max_len: int, framing: Framing,
    answer: tuple[int, int] | None = None,
) -> QAFeature:
    """Frame a question and context, cutting the context's end to fit max_len.

    Args:
        tokenizer: any tokenizer.
        question: the question text.
        context: the text holding the answer.
        max_len: the longest sequence the model takes.
        framing: the run's framing (its start and end ids around each part).
        answer: the answer's (start, end) character offsets in context, end exclusive.
    """
    question_ids = tokenizer.encode(question)
    context_ids, context_offsets = token_offsets(tokenizer, context)
    if not context_ids:
        raise UserError(f"the context {context[:40]!r} has no tokens to answer from")
    prefix, suffix = sequence_prefix(tokenizer, framing), sequence_suffix(tokenizer, framing)
    room = max_len - len(question_ids) - len(prefix) - 2 * len(suffix)
    if room < 1:
        raise UserError(
            f"a question of {len(question_ids)} tokens leaves no room for the context within the "
            f"model's maximum of {max_len} tokens: {question[:40]!r}"
        )
    truncated = max(0, len(context_ids) - room)
    context_ids, context_offsets = context_ids[:room], context_offsets[:room]
    head = [*prefix, *question_ids, *suffix]
    ids = [*head, *context_ids, *suffix]
    segments = [QUESTION_SEGMENT] * len(head) + [CONTEXT_SEGMENT] * (len(context_ids) + len(suffix))
    offsets = [None] * len(head) + [*context_offsets, *[None] * len(suffix)]
    first, stop = len(head), len(head) + len(context_ids)
    start = end = None
    if answer is not None:
        lo, hi = answer
        overlapping = [i for i, (a, b) in enumerate(context_offsets) if a < hi and b > lo]
        # Keep the answer only when every character of it survived the cut.
        cut = truncated and (not context_offsets or context_offsets[-1][1] < hi)
        if overlapping and not cut:
            start, end = first + overlapping[0], first + overlapping[-1]
    return QAFeature(ids, segments, offsets, first, stop, start, end, truncated)


def encode_qa(
    examples: Sequence[QAExample], tokenizer: Tokenizer, max_len: int, framing: Framing
) -> tuple[list[QAFeature], int]:
    """Frame examples for training; those whose answer does not fit are dropped and counted.

    Args:
        examples: question-answering examples.
        tokenizer: any tokenizer.
        max_len: the longest sequence the model takes.
        framing: the run's framing.
    Returns:
        (features with start and end set, number of examples dropped).
    """
    features, dropped = [], 0
    for example in examples:
        try:
            feature = frame_qa(
                tokenizer, example.question, example.context, max_len, framing,
                (example.answer_start, example.answer_end),
            )
        except UserError:
            dropped += 1
            continue
        if feature.start is None:
            dropped += 1
            continue
        features.append(feature)
    return features, dropped


def best_span(
    start_logits: torch.Tensor, end_logits: torch.Tensor, max_answer_len: int = MAX_ANSWER_LEN,
    allowed: torch.Tensor | None = None,
) -> tuple[int, int]:
    """The span (start, end), end inclusive, maximising start + end logits.

    Only spans with start <= end < start + max_answer_len whose both ends are allowed count;
    of equal scores the earliest start, then the earliest end, wins.

    Args:
        start_logits: [T].
        end_logits: [T].
        max_answer_len: the longest span, in tokens.
        allowed: [T] boolean, True at positions the answer may use (the context tokens);
            None allows every position.
    """
    t = start_logits.shape[-1]
    if allowed is None:
        allowed = torch.ones(t, dtype=torch.bool, device=start_logits.device)
    if max_answer_len < 1 or not bool(allowed.any()):
        raise ValueError("no span is possible: max_answer_len < 1 or no position allowed")
    position = torch.arange(t, device=start_logits.device)
    length = position[None, :] - position[:, None]  # [start, end]
    valid = (length >= 0) & (length < max_answer_len) & allowed[:, None] & allowed[None, :]
    scores = start_logits.float()[:, None] + end_logits.float()[None, :]
    best = int(scores.masked_fill(~valid, float("-inf")).flatten().argmax())
    return best // t, best % t


def context_mask(feature: QAFeature) -> torch.Tensor:
    """[T] True at the context tokens of a framed example."""
    mask = torch.zeros(len(feature.ids), dtype=torch.bool)
    mask[feature.context_start:feature.context_end] = True
    return mask


def span_text(feature: QAFeature, context: str, start: int, end: int) -> str:
    """The context's characters covered by token positions start..end (inclusive)."""
    return context[feature.offsets[start][0]:feature.offsets[end][1]]


def shifted_right(ids: torch.Tensor, start: int) -> torch.Tensor:
    """ids [B, T] moved one position right behind start: what BART's decoder reads of its source."""
    return torch.cat([ids.new_full((ids.size(0), 1), start), ids[:, :-1]], dim=1)


def span_logits(
    model: nn.Module, ids: torch.Tensor, segments: torch.Tensor, shifted: torch.Tensor,
    real: torch.Tensor | None = None,
) -> torch.Tensor:
    """Answer start/end logits [B, 2, T] of framed pairs, read as the model's family reads them.

    Args:
        model: a model with the span head (a DistributedDataParallel wrapper is looked through).
        ids: [B, T] framed question and context, right-padded.
        segments: [B, T] 0 for the question, 1 for the context (read only by an encoder with
            two or more segment embeddings; with one, both parts read segment 0, as transformers does).
        shifted: [B, T] ids shifted right behind the decoder's first token (read only by an
            encoder-decoder's decoder, as BartForQuestionAnswering builds its decoder input).
        real: [B, T] True at real tokens; None: those that are not the model's pad id.
    """
    from glassformer.train.distributed import unwrap

    config = getattr(unwrap(model), "config", None)
    family = config.family if config is not None else "encoder-only"
    mask = None if real is None else real[:, None, None, :]  # [B, 1, 1, T]
    if family == "encoder-decoder":
        return model(ids, shifted, mask)  # the decoder has no padding mask of its own, as in BART
    if family == "decoder-only":
        return model(ids, mask)  # right padding: the causal mask hides it from every real position
    if getattr(config, "n_segments", 2) < 2:
        segments = None
    return model(ids, mask, segments)


@torch.no_grad()
def answer_questions(
    model: nn.Module,
    tokenizer: Tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_len: int,
    framing: Framing,
    max_answer_len: int = MAX_ANSWER_LEN,
    device="cpu",
    batch_size: int = 64,
) -> list[str]:
    """The best answer span's text for each question about its context.

    Args:
        model: a model with the span head, of any family (see `span_logits`); a model without a
            config is called as an encoder, model(ids [B, T], mask [B, 1, 1, T], segments [B, T]) -> [B, 2, T].
        tokenizer: the model's tokenizer.
        questions: one question per context.
        contexts: the texts to answer from (cut at max_len).
        max_len: the model's longest sequence.
        framing: the run's framing.
        max_answer_len: the longest answer, in tokens.
    """
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    features = [frame_qa(tokenizer, q, c, max_len, framing) for q, c in zip(questions, contexts)]
    was_training = model.training
    model.eval()
    answers = []
    for first in range(0, len(features), batch_size):
        chunk = features[first:first + batch_size]
        ids = pad([f.ids for f in chunk], tokenizer.pad_id).to(device)
        segments = pad([f.segments for f in chunk], QUESTION_SEGMENT).to(device)
        lengths = torch.tensor([len(f.ids) for f in chunk], device=device)
        real = torch.arange(ids.size(1), device=device)[None, :] < lengths[:, None]  # [B, T]
        shifted = shifted_right(ids, decoder_start(tokenizer, framing))
        logits = span_logits(model, ids, segments, shifted, real).float().cpu()
        for i, feature in enumerate(chunk):
            t = len(feature.ids)
            start, end = best_span(logits[i, 0, :t], logits[i, 1, :t], max_answer_len, context_mask(feature))
            answers.append(span_text(feature, contexts[first + i], start, end))
    model.train(was_training)
    return answers


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze spaces."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())



def _f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of two normalised answers (1 when both are empty, as SQuAD 2.0 scores)."""
    predicted, expected = prediction.split(), gold.split()
    if not predicted or not expected:
        return float(predicted == expected)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: Sequence[str], answers: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """SQuAD's exact match and token F1, averaged over questions, as fractions in [0, 1].

    Args:
        predictions: one predicted answer text per question.
        answers: the gold answer of each question, or a list of acceptable ones (the best
            match counts, as in SQuAD).
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answers")
    exact = f1 = 0.0
    for prediction, gold in zip(predictions, answers):
        golds = [gold] if isinstance(gold, str) else list(gold)
        predicted = normalize_answer(prediction)
        exact += max(float(predicted == normalize_answer(g)) for g in golds)
        f1 += max(_f1(predicted, normalize_answer(g)) for g in golds)
    n = max(len(predictions), 1)
    return {"exact_match": exact / n, "f1": f1 / n}


class QuestionAnswering(Kind):
    name, family, head = "qa", "encoder-only", "qa"
    also_trains = ("decoder-only",)
    # BART's span head fine-tunes from an imported BART folder and exports back to it; a
    # sequence-to-sequence preset would give a model that no Hugging Face QA class holds.
    also_fine_tunes = ("encoder-decoder",)
    primary_metric = "exact_match"
    accuracy_name = "position_accuracy"

    stored_for_max_len = True

    def read(self, path):
        return read_qa(path)

    def stream(self, path):
        return iter_qa(path)

    def texts(self, examples):
        texts = [t for e in examples for t in (e.question, e.context)]
        return texts, texts

    def model_changes(self, config):
        if config.family != "encoder-only":
            return {}  # a decoder reads the pair as one text, as GPT-2's, LLaMA's and BART's QA classes do
        return {"n_segments": max(2, config.n_segments)}  # question and context

    def encode(self, examples, source, target, labels, max_len, framing):
        features, dropped = encode_qa(examples, source, max_len, framing)
        return Encoded(self.name, [f.ids for f in features], [[f.start, f.end] for f in features], dropped,
                       segments=[f.segments for f in features])

    def store_columns(self, source, target, labels):
        return {"segments": ("u1", 0, 2), "spans": ("<i4", -1, 1 << 30)}

    def store_rows(self, examples, source, target, labels, framing, max_len):
        inputs, segments, spans = [], [], []
        for example in examples:
            features, _ = encode_qa([example], source, max_len, framing)
            feature = features[0] if features else None
            inputs.append(feature.ids if feature else [])
            segments.append(feature.segments if feature else [])
            spans.append([feature.start, feature.end] if feature else [-1, -1])
        return inputs, {"segments": segments, "spans": spans}

    def from_store(self, store, indices, skipped):
        return Encoded(self.name, store.rows(indices), store.rows(indices, "spans"), skipped,
                       segments=store.rows(indices, "segments"), lengths=store.lengths[indices])

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        segments = pad([encoded.segments[i] for i in indices], 0)
        spans = torch.tensor([encoded.targets[i] for i in indices], dtype=torch.long)  # [B, 2]
        shifted = shifted_right(ids, decoder_start(source, framing))  # an encoder-decoder's decoder input
        return Batch({"ids": ids, "segments": segments, "shifted": shifted}, spans, 2 * len(indices))

    def _answers(self, run, examples, device, batch_size=64):
        return answer_questions(run.model, run.tokenizer, [e.question for e in examples], [e.context for e in examples],
                                run.config.max_len, run.framing, device=device, batch_size=batch_size)

    def predicted_metrics(self, run, encoded, examples, batch_size, device, limit, world):
        """SQuAD-style exact-match and token F1 of the predicted answer spans."""
        from glassformer.train.distributed import unwrap

        run = run.with_model(unwrap(run.model).eval())
        scores = qa_metrics(self._answers(run, examples, device, batch_size), [e.answer_text for e in examples])
        return {"exact_match": scores["exact_match"], "answer_f1": scores["f1"]}

    def example_lines(self, run, examples, device):
        lines = []
        for e, answer in zip(examples, self._answers(run, examples, device)):
            mark = "ok " if answer == e.answer_text else "   "
            lines.append(f"{mark} {e.question} -> {answer!r} (reference {e.answer_text!r})")
        return lines
