"""Decoding: greedy, sampling and beam search with a KV cache, stopping rules, fill-mask, streaming."""

from glassformer.generate.beam import LENGTH_PENALTIES, beam_search, length_penalty
from glassformer.generate.beam_lm import beam_search_lm
from glassformer.generate.decoder_only import generate_lm
from glassformer.generate.encoder_decoder import generate_seq2seq
from glassformer.generate.fill_mask import fill_mask
from glassformer.generate.logits import (
    apply_temperature,
    min_p_filter,
    no_repeat_ngram_filter,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)
from glassformer.generate.results import Generation, Hypothesis, MaskFill
from glassformer.generate.runs import PAPER_LENGTH_MARGIN, greedy_seq2seq, translate_nbest, translate_texts
from glassformer.generate.sampling import Sampling, choose_next, logits_to_probs, sample
from glassformer.generate.stopping import Stopping, check_prompt_length
from glassformer.generate.streaming import TextStreamer

__all__ = [
    "beam_search_lm",
    "Generation",
    "Hypothesis",
    "LENGTH_PENALTIES",
    "MaskFill",
    "PAPER_LENGTH_MARGIN",
    "Sampling",
    "Stopping",
    "TextStreamer",
    "apply_temperature",
    "beam_search",
    "check_prompt_length",
    "choose_next",
    "fill_mask",
    "generate_lm",
    "generate_seq2seq",
    "greedy_seq2seq",
    "length_penalty",
    "logits_to_probs",
    "min_p_filter",
    "no_repeat_ngram_filter",
    "repetition_penalty",
    "sample",
    "top_k_filter",
    "top_p_filter",
    "translate_nbest",
    "translate_texts",
]
