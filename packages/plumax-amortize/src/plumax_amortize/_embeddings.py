"""Summary networks: observations -> a fixed-length feature vector for the flow.

Every embedding receives ONE observation already standardised by the estimator, with
invalid elements filled with 0, together with its validity mask, and returns the
conditioning vector ``e`` of the flow ``q(theta | e)``. Trained jointly with the flow by
maximum likelihood (Greenberg, Nonnenmacher & Macke 2019 call this learning the summary
statistics end to end).

* :class:`MLPEmbedding` — vectors (point sensors, a few pixels): ``[y, mask] -> MLP``.
* :class:`CNNEmbedding` — column images ``(ny, nx)`` with validity-mask and coordinate
  channels: a stride-1 block, then strided ones, mask-weighted global average pooling and
  an MLP head.
* :class:`DeepSetEmbedding` — a variable number K of repeated observations of one
  source (several overpasses): ``rho(mean_k phi(inner(y_k)))`` over the overpasses that
  hold any valid element (Zaheer et al. 2017, "Deep sets"); invariant to the order of
  the overpasses and to all-masked padding slots.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Bool, Float, PRNGKeyArray


class AbstractEmbedding(eqx.Module):
    """A summary network for one observation.

    Attributes:
        obs_shape: shape ``S`` of one observation this network accepts.
        out_dim: length ``E`` of the feature vector.

    Contract for every implementation:

    * ``__call__(values, mask)`` with ``values`` (standardised, finite) and ``mask`` of
      shape ``obs_shape`` returns a finite ``(out_dim,)`` vector; it is pure and vmaps;
    * the output does not depend on ``values`` where ``mask`` is False;
    * ``element_ndim`` trailing axes of ``obs_shape`` make up one "element" over which
      the estimator standardises (all leading axes are pooled: e.g. overpasses; 0 pools
      everything into one location and scale).
    """

    obs_shape: AbstractVar[tuple[int, ...]]
    out_dim: AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, values: Float[Array, "*S"], mask: Bool[Array, "*S"]) -> Float[Array, " E"]:
        """Feature vector of one observation."""

    @property
    def element_ndim(self) -> int:
        return len(self.obs_shape)


def _check_shape(obs_shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in obs_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"`obs_shape` must be a non-empty tuple of positive ints, got {obs_shape}")
    return shape


class MLPEmbedding(AbstractEmbedding):
    """``[y.ravel(), mask.ravel()] -> MLP -> (out_dim,)`` for vector observations.

    Attributes:
        obs_shape: shape of one observation (any; it is raveled).
        out_dim: feature length.
        mlp: the network (``2 * prod(obs_shape)`` inputs).
    """

    obs_shape: tuple[int, ...] = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)
    mlp: eqx.nn.MLP

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        out_dim: int = 32,
        *,
        width: int = 64,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        self.obs_shape = _check_shape(obs_shape)
        if out_dim < 1 or width < 1 or depth < 0:
            raise ValueError("`out_dim` and `width` must be >= 1 and `depth` >= 0")
        self.out_dim = int(out_dim)
        n_in = 2 * int(np.prod(self.obs_shape))
        self.mlp = eqx.nn.MLP(n_in, self.out_dim, width, depth, activation=jax.nn.gelu, key=key)

    def __call__(self, values, mask):
        m = mask.astype(values.dtype)
        x = jnp.concatenate([(values * m).ravel(), m.ravel()])
        return self.mlp(x)


class CNNEmbedding(AbstractEmbedding):
    """A small CNN over a column image with validity-mask and coordinate channels.

    Input channels: the standardised image (0 where invalid), the mask and, by default,
    the pixel's normalised row and column coordinates in ``[-1, 1]`` (0 where invalid).
    Each block is a 3x3 convolution (stride 1 or 2) and GELU; after a stride-2 block the
    mask is max-pooled and features are zeroed where nothing valid was seen. The last
    feature map is averaged over its valid area and also kept whole (the coarse map
    carries the plume's position), concatenated with the valid fraction, and mapped by a
    one-hidden-layer MLP to ``out_dim``.

    Three choices matter for reading a source position to a fraction of a pixel (on the
    Tier I plume the posterior sd of the crosswind source position is 0.6-1.2 m on 26 m
    pixels). On the hardest of the 20 cases of ``tests-integration/test_amortize_plume.py``
    the first two together moved the amortized y0 from 4.0 oracle σ off to 1.4 σ (60 000
    simulations), and neither did alone (3.1 and 5.1 σ; docs/amortize/calibration.md):

    * **The first block has stride 1** (default ``strides=(1, 2, 2, ...)``). A stride-2
      first convolution samples the image at every other row, so a one-pixel shift of
      the plume changes its features differently depending on the parity of the row
      (aliasing; Zhang 2019, "Making convolutional networks shift-invariant again", ICML).
    * **Coordinate channels** (``coordinates=True``; Liu et al. 2018, "An intriguing
      failing of convolutional neural networks and the CoordConv solution", NeurIPS):
      convolutions are translation-equivariant, so the pooled features cannot say where
      the plume is, and the coarse map says it only to within one of its cells.
    * **One location and scale for the whole image** (``standardise="image"``, what the
      `sbi` package calls "structured" z-scoring): the convolutions share their weights
      across positions, so the input must keep the same scale everywhere. Per-pixel
      standardisation (``"pixel"``) divides the plume's core by a larger number than its
      flanks and distorts the crosswind profile.

    Attributes:
        obs_shape: ``(ny, nx)``.
        out_dim: feature length.
        strides: the stride (1 or 2) of each block.
        coordinates: whether the coordinate channels are appended.
        standardise: ``"image"`` (one location and scale for the whole image) or
            ``"pixel"`` (one per pixel).
        convs: the convolution layers.
        head: final MLP.
    """

    obs_shape: tuple[int, ...] = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)
    strides: tuple[int, ...] = eqx.field(static=True)
    coordinates: bool = eqx.field(static=True)
    standardise: str = eqx.field(static=True)
    convs: tuple[eqx.nn.Conv2d, ...]
    head: eqx.nn.MLP

    def __init__(
        self,
        obs_shape: tuple[int, int],
        out_dim: int = 32,
        *,
        channels: tuple[int, ...] = (16, 16, 32, 32),
        strides: tuple[int, ...] | None = None,
        coordinates: bool = True,
        standardise: str = "image",
        key: PRNGKeyArray,
    ):
        """Build the network.

        Args:
            obs_shape: ``(ny, nx)`` of one image.
            out_dim: feature length.
            channels: output channels of each block.
            strides: stride of each block, 1 or 2 (same length as ``channels``); default
                1 for the first block and 2 for the others.
            coordinates: append the normalised pixel coordinates as two input channels.
            standardise: ``"image"`` or ``"pixel"`` (see above).
            key: PRNG key for the weights.

        Raises:
            ValueError: a shape that is not ``(ny, nx)``, bad ``channels`` or
                ``strides``, or an unknown ``standardise``.
            TypeError: a non-bool ``coordinates``.
        """
        self.obs_shape = _check_shape(obs_shape)
        if len(self.obs_shape) != 2:
            raise ValueError(f"`obs_shape` must be (ny, nx) for a CNN, got {obs_shape}")
        if standardise not in ("image", "pixel"):
            raise ValueError(f"`standardise` must be 'image' or 'pixel', got {standardise!r}")
        self.standardise = standardise
        channels = tuple(channels)
        if not channels or any(int(c) != c or c < 1 for c in channels):
            raise ValueError(
                f"`channels` must be a non-empty tuple of positive ints, got {channels}"
            )
        strides = (1,) + (2,) * (len(channels) - 1) if strides is None else tuple(strides)
        if len(strides) != len(channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(
                f"`strides` must hold one stride (1 or 2) per block of `channels` "
                f"{channels}, got {strides}"
            )
        if not isinstance(coordinates, bool):
            raise TypeError(f"`coordinates` must be a bool, got {type(coordinates).__name__}")
        self.strides = tuple(int(s) for s in strides)
        self.coordinates = coordinates
        self.out_dim = int(out_dim)
        keys = jr.split(key, len(channels) + 1)
        convs, c_in = [], 4 if coordinates else 2
        for k, c, s in zip(keys[:-1], channels, self.strides, strict=True):
            convs.append(eqx.nn.Conv2d(c_in, int(c), 3, stride=s, padding=1, key=k))
            c_in = int(c)
        self.convs = tuple(convs)
        ny, nx = self.obs_shape
        for s in self.strides:
            if s == 2:
                ny, nx = (ny + 1) // 2, (nx + 1) // 2
        # pooled features plus the flattened coarse map (which keeps the position)
        self.head = eqx.nn.MLP(
            c_in * (1 + ny * nx) + 1,
            self.out_dim,
            64,
            1,
            activation=jax.nn.gelu,
            key=keys[-1],
        )

    @property
    def element_ndim(self) -> int:
        return 0 if self.standardise == "image" else 2

    def __call__(self, values, mask):
        m = mask.astype(values.dtype)
        channels = [values * m, m]
        if self.coordinates:
            ny, nx = self.obs_shape
            rows, cols = jnp.meshgrid(
                jnp.linspace(-1.0, 1.0, ny, dtype=values.dtype),
                jnp.linspace(-1.0, 1.0, nx, dtype=values.dtype),
                indexing="ij",
            )
            channels += [rows * m, cols * m]
        x = jnp.stack(channels)
        w = m[None]
        for conv, stride in zip(self.convs, self.strides, strict=True):
            x = jax.nn.gelu(conv(x))
            if stride == 2:
                w = _maxpool2(w)
            x = x * w
        pooled = jnp.sum(x, axis=(1, 2)) / jnp.maximum(jnp.sum(w), 1.0)
        feats = jnp.concatenate([pooled, x.ravel(), jnp.mean(m)[None]])
        return self.head(feats)


def _maxpool2(w: Array) -> Array:
    """2x2 max pooling with stride 2 and 'same' padding of a (1, ny, nx) map."""
    _, ny, nx = w.shape
    w = jnp.pad(w, ((0, 0), (0, ny % 2), (0, nx % 2)))
    return jax.lax.reduce_window(w, 0.0, jax.lax.max, (1, 2, 2), (1, 2, 2), "VALID")


class DeepSetEmbedding(AbstractEmbedding):
    """Permutation-invariant embedding of K repeated observations (overpasses).

    ``e = rho( sum_k a_k phi(inner(y_k)) / sum_k a_k )`` with ``a_k = 1`` when overpass
    ``k`` has any valid element and 0 for padding (all-masked) slots (Zaheer et al. 2017).
    The number of present overpasses (``sum_k a_k``) is appended before ``rho`` so the
    flow can sharpen with more data.

    Attributes:
        obs_shape: ``(K, *S1)``, K the maximum number of overpasses.
        out_dim: feature length.
        inner: embedding of one overpass (``inner.obs_shape == S1``).
        phi, rho: the per-element and pooled networks.
    """

    obs_shape: tuple[int, ...] = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)
    inner: AbstractEmbedding
    phi: eqx.nn.MLP
    rho: eqx.nn.MLP

    def __init__(
        self,
        inner: AbstractEmbedding,
        max_repeats: int,
        out_dim: int = 32,
        *,
        width: int = 64,
        key: PRNGKeyArray,
    ):
        if not isinstance(inner, AbstractEmbedding):
            raise TypeError(f"`inner` must be an AbstractEmbedding, got {type(inner).__name__}")
        if max_repeats < 1:
            raise ValueError(f"`max_repeats` must be >= 1, got {max_repeats}")
        self.inner = inner
        self.obs_shape = (int(max_repeats), *inner.obs_shape)
        self.out_dim = int(out_dim)
        k1, k2 = jr.split(key)
        self.phi = eqx.nn.MLP(inner.out_dim, width, width, 1, activation=jax.nn.gelu, key=k1)
        self.rho = eqx.nn.MLP(width + 1, self.out_dim, width, 1, activation=jax.nn.gelu, key=k2)

    @property
    def element_ndim(self) -> int:
        return self.inner.element_ndim

    def __call__(self, values, mask):
        feats = jax.vmap(lambda v, m: self.phi(self.inner(v, m)))(values, mask)
        axes = tuple(range(1, mask.ndim))
        present = jnp.any(mask, axis=axes).astype(feats.dtype)
        count = jnp.sum(present)
        pooled = jnp.sum(feats * present[:, None], axis=0) / jnp.maximum(count, 1.0)
        return self.rho(jnp.concatenate([pooled, jnp.log1p(count)[None]]))
