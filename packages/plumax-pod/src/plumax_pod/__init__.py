"""plumax-pod (in development)."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax-pod")
