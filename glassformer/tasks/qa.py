"""Extractive question answering: JSON lines of question, context and answer; answer spans as positions."""

from __future__ import annotations

import torch

from glassformer.data.qa import read_qa
from glassformer.tasks.kind import Kind
from glassformer.train.batches import Batch, Encoded, pad
from glassformer.train.qa import answer_questions, encode_qa, qa_metrics


class QuestionAnswering(Kind):
    name, family, head = "qa", "encoder-only", "qa"
    primary_metric = "exact_match"
    accuracy_name = "position_accuracy"

    def read(self, path):
        return read_qa(path)

    def texts(self, examples):
        texts = [t for e in examples for t in (e.question, e.context)]
        return texts, texts

    def model_changes(self, config):
        return {"n_segments": max(2, config.n_segments)}  # question and context

    def encode(self, examples, source, target, labels, max_len, framing):
        features, dropped = encode_qa(examples, source, max_len, framing)
        return Encoded(self.name, [f.ids for f in features], [[f.start, f.end] for f in features], dropped,
                       segments=[f.segments for f in features])

    def batch(self, encoded, indices, source, target, framing, mask_prob=0.15, generator=None):
        ids = pad([encoded.inputs[i] for i in indices], source.pad_id)
        segments = pad([encoded.segments[i] for i in indices], 0)
        spans = torch.tensor([encoded.targets[i] for i in indices], dtype=torch.long)  # [B, 2]
        return Batch({"ids": ids, "segments": segments}, spans, 2 * len(indices))

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
