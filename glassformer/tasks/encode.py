"""Sentence encoding: an encoder without a task head (imported, or a body to embed with); not trained here."""

from __future__ import annotations

from glassformer.tasks.kind import Kind


class Encode(Kind):
    name, family = "encode", "encoder-only"
    trainable = False
