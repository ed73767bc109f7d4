"""Network architectures for emulators (equinox).

Every architecture is an :class:`AbstractEmulatorNet`: a map from a normalised input
vector ``(n_in,)`` (unconstrained params, then met features) to the flat normalised
output ``(n_out,)`` (see :class:`~plumax_emulate.OutputTransform`). The surrounding
:class:`~plumax_emulate.NeuralForward` does the (un)normalisation and reshaping.

* :class:`MLPNet` — a fully connected network, for receptor / vector outputs.
* :class:`ConvDecoderNet` — a dense layer to a coarse feature map, then transposed
  convolutions doubling the resolution (a DCGAN-style decoder, Radford et al. 2016),
  for column images.
* :class:`PCANet` — a linear basis (initialised from the principal components of the
  training targets, optionally learned) with MLP coefficients ("PCA + NN" emulation,
  e.g. Higdon et al. 2008, JASA 103:570).
"""

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Float, PRNGKeyArray


class AbstractEmulatorNet(eqx.Module):
    """A trainable map ``(n_in,) -> (n_out,)`` between normalised spaces.

    Attributes:
        n_in: input length (unconstrained params + met features).
        n_out: output length (the emulated observations' size).

    Contract: ``__call__`` is pure, traceable and differentiable w.r.t. its input and
    its array leaves; it maps a single ``(n_in,)`` vector (vmap for batches).
    """

    n_in: AbstractVar[int]
    n_out: AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        """Normalised outputs for normalised inputs ``x``."""


def _check_pos(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


class MLPNet(AbstractEmulatorNet):
    """Fully connected network ``n_in -> width x depth -> n_out``.

    Attributes:
        mlp: the `equinox.nn.MLP`.
        n_in, n_out: input / output sizes.
    """

    mlp: eqx.nn.MLP
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        width: int = 128,
        depth: int = 3,
        activation: Callable = jax.nn.gelu,
        key: PRNGKeyArray,
    ):
        self.n_in = _check_pos("n_in", n_in)
        self.n_out = _check_pos("n_out", n_out)
        self.mlp = eqx.nn.MLP(
            self.n_in,
            self.n_out,
            _check_pos("width", width),
            _check_pos("depth", depth),
            activation=activation,
            key=key,
        )

    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        return self.mlp(x)


class ConvDecoderNet(AbstractEmulatorNet):
    """Params -> image decoder: dense layer to ``(C, h0, w0)``, then upsampling convs.

    Each of the ``n_up`` stages is a stride-2 transposed convolution (kernel 4,
    padding 1: exactly doubles the size) followed by the activation; a final 3x3
    convolution maps to one channel, cropped to ``image_shape``. ``h0 = ceil(H / 2^n_up)``.

    Attributes:
        head: MLP from ``n_in`` to ``channels[0] * h0 * w0``.
        ups: the transposed convolutions.
        out: the final convolution.
        image_shape: ``(H, W)`` of the output image; ``n_out = H * W``.
        channels: channels of each stage (length ``n_up + 1``).
    """

    head: eqx.nn.MLP
    ups: tuple[eqx.nn.ConvTranspose2d, ...]
    out: eqx.nn.Conv2d
    image_shape: tuple[int, int] = eqx.field(static=True)
    channels: tuple[int, ...] = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        image_shape: tuple[int, int],
        *,
        channels: tuple[int, ...] = (64, 32, 16, 8),
        head_width: int = 128,
        activation: Callable = jax.nn.gelu,
        key: PRNGKeyArray,
    ):
        self.n_in = _check_pos("n_in", n_in)
        if len(image_shape) != 2:
            raise ValueError(f"`image_shape` must be (H, W), got {image_shape!r}")
        H, W = (_check_pos("image_shape", int(s)) for s in image_shape)
        self.image_shape = (H, W)
        self.n_out = H * W
        channels = tuple(_check_pos("channels", int(c)) for c in channels)
        if len(channels) < 1:
            raise ValueError("`channels` needs at least one entry")
        self.channels = channels
        self.activation = activation
        n_up = len(channels) - 1
        h0, w0 = math.ceil(H / 2**n_up), math.ceil(W / 2**n_up)
        k_head, k_out, *k_ups = jr.split(key, 2 + n_up)
        self.head = eqx.nn.MLP(
            self.n_in, channels[0] * h0 * w0, head_width, 2, activation=activation, key=k_head
        )
        self.ups = tuple(
            eqx.nn.ConvTranspose2d(ci, co, 4, stride=2, padding=1, key=k)
            for ci, co, k in zip(channels[:-1], channels[1:], k_ups, strict=True)
        )
        self.out = eqx.nn.Conv2d(channels[-1], 1, 3, padding=1, key=k_out)

    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        n_up = len(self.ups)
        H, W = self.image_shape
        h0, w0 = math.ceil(H / 2**n_up), math.ceil(W / 2**n_up)
        h = self.activation(self.head(x)).reshape(self.channels[0], h0, w0)
        for up in self.ups:
            h = self.activation(up(h))
        img = self.out(h)[0, :H, :W]
        return img.reshape(-1)


class PCANet(AbstractEmulatorNet):
    """Linear basis + MLP coefficients: ``y = coeffs(x) @ basis + bias``.

    The basis rows are initialised to the leading principal components of the
    (normalised) training targets and the bias to their mean, so at initialisation the
    network is the best rank-``K`` linear model; with ``learn_basis=True`` the basis
    and bias are trained with the MLP (a learned linear decoder), otherwise they are
    frozen (``stop_gradient``).

    Attributes:
        mlp: MLP ``n_in -> K`` giving the coefficients.
        basis: ``(K, n_out)`` basis vectors.
        bias: ``(n_out,)``.
        coeff_scale: ``(K,)`` singular values / sqrt(n) (so MLP targets are ~unit).
        learn_basis: train the basis and bias too.
    """

    mlp: eqx.nn.MLP
    basis: Float[Array, "K n_out"]
    bias: Float[Array, " n_out"]
    coeff_scale: Float[Array, " K"]
    learn_basis: bool = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        targets: Float[Array, "n_samples n_out"],
        *,
        n_components: int = 32,
        width: int = 128,
        depth: int = 3,
        learn_basis: bool = False,
        activation: Callable = jax.nn.gelu,
        key: PRNGKeyArray,
    ):
        self.n_in = _check_pos("n_in", n_in)
        t = np.asarray(targets, dtype=np.float64)
        if t.ndim != 2 or t.shape[0] < 2:
            raise ValueError(f"`targets` must be (n_samples >= 2, n_out), got {t.shape}")
        k = min(_check_pos("n_components", n_components), *t.shape)
        self.n_out = int(t.shape[1])
        mean = t.mean(0)
        _, s, vt = np.linalg.svd(t - mean, full_matrices=False)
        scale = s[:k] / math.sqrt(t.shape[0])
        scale = np.where(scale > 1e-12 * max(scale[0], 1e-30), scale, 1.0)
        self.basis = jnp.asarray(vt[:k], jnp.float32)
        self.bias = jnp.asarray(mean, jnp.float32)
        self.coeff_scale = jnp.asarray(scale, jnp.float32)
        self.learn_basis = bool(learn_basis)
        self.mlp = eqx.nn.MLP(
            self.n_in,
            k,
            _check_pos("width", width),
            _check_pos("depth", depth),
            activation=activation,
            key=key,
        )

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[0])

    def explained_variance(self, targets: Float[Array, "n n_out"]) -> float:
        """Fraction of the variance of ``targets`` captured by the basis (0-1)."""
        t = np.asarray(targets) - np.asarray(self.bias)
        b = np.asarray(self.basis)
        proj = t @ b.T @ b
        return float(1 - np.sum((t - proj) ** 2) / max(np.sum(t**2), 1e-300))

    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        basis, bias = self.basis, self.bias
        if not self.learn_basis:
            basis, bias = jax.lax.stop_gradient(basis), jax.lax.stop_gradient(bias)
        c = self.mlp(x) * jax.lax.stop_gradient(self.coeff_scale)
        return c @ basis + bias
