"""The three Transformer families, built from the parts in glassformer.nn."""

from glassformer.models.build import MODEL_CLASSES, build_model, count_parameters
from glassformer.models.decoder_only import DecoderOnly
from glassformer.models.encoder_decoder import EncoderDecoder
from glassformer.models.encoder_only import EncoderOnly

__all__ = ["MODEL_CLASSES", "build_model", "count_parameters", "DecoderOnly", "EncoderDecoder", "EncoderOnly"]
