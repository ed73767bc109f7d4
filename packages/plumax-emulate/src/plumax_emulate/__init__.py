"""Neural surrogates that are themselves ForwardModels."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax-emulate")
