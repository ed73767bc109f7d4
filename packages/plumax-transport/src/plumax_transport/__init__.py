"""plumax-transport (in development)."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax-transport")
