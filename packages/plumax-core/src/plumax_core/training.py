"""Training-loop building blocks shared by the neural plumax libraries (emulators, flows).

Deliberately free of any optimiser library: the optimiser is any object with an
optax-style ``update`` method.
"""

from ._training import minibatch_epoch as minibatch_epoch

__all__ = [
    "minibatch_epoch",
]
