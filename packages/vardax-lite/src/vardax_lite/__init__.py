"""vardax-lite (in development)."""

import importlib.metadata

__version__ = importlib.metadata.version("vardax-lite")
