"""Printing shared by commands: metrics on one line, and examples side by side."""

from __future__ import annotations


def format_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if key in ("exact_match", "accuracy", "token_accuracy", "position_accuracy"):
            parts.append(f"{key} {100 * value:.1f}%")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def print_examples(run, examples: list, device) -> None:
    """A few held-out examples with the model's output beside the reference."""
    if not examples:
        return
    if run.kind == "seq2seq":
        from glassformer.generate import translate_texts

        outputs = translate_texts(run, [e.source for e in examples], device=device)
        for e, out in zip(examples, outputs):
            mark = "ok " if out == e.target else "   "
            print(f"{mark} source:    {e.source}\n    reference: {e.target}\n    output:    {out}")
    elif run.kind == "tag":
        from glassformer.train.tagging import predict_tags

        predicted = predict_tags(run.model, run.tokenizer, run.labels, [list(e.tokens) for e in examples],
                                 run.config.max_len, device=device)
        for e, tags in zip(examples, predicted):
            mark = "ok " if list(tags) == list(e.tags) else "   "
            print(f"{mark} " + " ".join(w if t == "O" else f"[{w}/{t}]" for w, t in zip(e.tokens, tags)))
    elif run.kind == "qa":
        from glassformer.train.qa import answer_questions

        answers = answer_questions(run.model, run.tokenizer, [e.question for e in examples],
                                   [e.context for e in examples], run.config.max_len, device=device)
        for e, answer in zip(examples, answers):
            mark = "ok " if answer == e.answer_text else "   "
            print(f"{mark} {e.question} -> {answer!r} (reference {e.answer_text!r})")
    elif run.kind == "classify":
        from glassformer.classify import classify_texts

        for e, probs in zip(examples, classify_texts(run, [e.text for e in examples], device)):
            label, p = next(iter(probs.items()))
            mark = "ok " if label == e.label else "   "
            print(f"{mark} {e.text!r}: reference {e.label}, predicted {label} ({p:.2f})")
