"""Amortized posteriors with conditional normalizing flows."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax-amortize")
