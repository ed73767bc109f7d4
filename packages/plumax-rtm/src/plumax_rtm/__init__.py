"""Radiative transfer, instruments and retrievals for methane."""

import importlib.metadata

__version__ = importlib.metadata.version("plumax-rtm")
