"""glassformer: the Transformer of "Attention Is All You Need", built to be seen through."""

__version__ = "0.1.0"
