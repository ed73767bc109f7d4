"""Meta-package: a compatible set of the libraries, the CLI and pipelines."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax")
