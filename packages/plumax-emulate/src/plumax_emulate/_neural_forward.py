"""`NeuralForward`: a trained surrogate that is itself a forward model (cycle step 3).

Met handling (two modes, fixed when the emulator is trained):

* **fixed met** (``training_met`` set, ``met_features`` None): the emulator was trained
  under one `MetField`. A met whose fields differ in presence or shape raises
  ``ValueError`` (always, also under ``jit``); a met with the same shapes but different
  values warns, raises or is ignored per ``met_mismatch`` (checked only when the met
  is concrete, i.e. outside ``jit``).
* **met features** (``met_features`` set): the features of the met (e.g. mean wind
  components, :class:`~plumax_emulate.WindFeatures`) are extra network inputs after
  the unconstrained params; any met works, within the training range of the features.

Out-of-distribution inputs: params outside the `ParamSpec` support raise ``ValueError``
(the emulated model is undefined there). Inputs (unconstrained params and met features)
outside the box spanned by the training draws (``input_lower``/``input_upper``) warn,
raise or pass per ``ood``. The checks run on concrete inputs; under ``jit``/``vmap``/
``grad`` ``ood="raise"`` becomes a `plumax_core.validation.error_if` runtime error and ``"warn"`` is
skipped (call :meth:`NeuralForward.check_inputs` outside the transformation).
"""

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from plumax_core import AbstractForwardModel, MetField, Observations, ParamSpec
from plumax_core.validation import error_if

from ._features import AbstractMetFeatures
from ._nets import AbstractEmulatorNet
from ._normalise import OutputTransform, Standardiser

Policy = Literal["warn", "raise", "ignore"]
_POLICIES = ("warn", "raise", "ignore")
_MET_FIELDS = (
    "u",
    "v",
    "w",
    "temperature",
    "pressure",
    "pblh",
    "stability_class",
    "obukhov_length",
    "z0",
    "time",
    "z",
    "y",
    "x",
)


class OutOfDistributionWarning(UserWarning):
    """Emulator inputs lie outside the range of its training data."""


class MetMismatchWarning(UserWarning):
    """A fixed-met emulator is called with a met different from its training met."""


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class NeuralForward(AbstractForwardModel):
    """A neural emulator of a forward model, usable wherever the model is.

    ``__call__(params, met)`` returns `Observations` with the emulated model's ``kind``,
    units, ``dims``, ``coords``, ``sigma``, ``mask`` and ``instrument`` (those of the
    training template: error models that depend on the params are not emulated) and
    the emulated ``values``. It is pure and differentiable (``jax.grad``, ``jacfwd``).

    Attributes:
        net: the network, normalised inputs -> normalised flat outputs.
        input_norm: standardisation of ``[theta_unconstrained, met_features]``.
        output_transform: target transform (optionally log-space) of the flat outputs.
        param_spec: the emulated model's `ParamSpec`.
        template: the emulated model's output for one training draw.
        training_met: the fixed met (fixed-met mode) or None.
        met_features: the met-feature extractor (feature mode) or None.
        input_lower, input_upper: ``(n_in,)`` box of the training inputs.
        ood: ``"warn"``, ``"raise"`` or ``"ignore"`` for inputs outside the box.
        met_mismatch: policy for a fixed-met emulator called with other met values.
        emulated_model_id, emulated_model_hash: identity of the emulated model.
        dataset_hash: content hash of the training bank
            (`plumax_core.SimulationBank.content_hash`, its registry hash); "" when
            unknown.
    """

    net: AbstractEmulatorNet
    input_norm: Standardiser
    output_transform: OutputTransform
    param_spec: ParamSpec
    template: Observations
    training_met: MetField | None
    met_features: AbstractMetFeatures | None
    input_lower: Float[Array, " n_in"]
    input_upper: Float[Array, " n_in"]
    ood: str = eqx.field(static=True, default="warn")
    met_mismatch: str = eqx.field(static=True, default="warn")
    emulated_model_id: str = eqx.field(static=True, default="")
    emulated_model_hash: str = eqx.field(static=True, default="")
    dataset_hash: str = eqx.field(static=True, default="")

    def __check_init__(self):
        if not isinstance(self.net, AbstractEmulatorNet):
            raise TypeError("`net` must be an AbstractEmulatorNet")
        if not isinstance(self.param_spec, ParamSpec):
            raise TypeError("`param_spec` must be a ParamSpec")
        if not isinstance(self.template, Observations):
            raise TypeError("`template` must be Observations")
        if self.ood not in _POLICIES:
            raise ValueError(f"`ood` must be one of {_POLICIES}, got {self.ood!r}")
        if self.met_mismatch not in _POLICIES:
            raise ValueError(
                f"`met_mismatch` must be one of {_POLICIES}, got {self.met_mismatch!r}"
            )
        if (self.training_met is None) == (self.met_features is None):
            raise ValueError("give exactly one of `training_met` (fixed met) or `met_features`")
        n_feat = 0 if self.met_features is None else len(self.met_features.names)
        n_in = self.param_spec.size + n_feat
        if self.net.n_in != n_in:
            raise ValueError(f"`net.n_in` is {self.net.n_in}, expected D + F = {n_in}")
        if self.net.n_out != self.template.size:
            raise ValueError(
                f"`net.n_out` is {self.net.n_out}, expected the output size {self.template.size}"
            )
        if self.output_transform.mean.shape != (self.template.size,):
            raise ValueError("`output_transform` does not match the output size")
        for name in ("input_lower", "input_upper"):
            if getattr(self, name).shape != (n_in,):
                raise ValueError(f"`{name}` must have shape ({n_in},)")

    # ------------------------------------------------------------------ checks

    def _check_met_shapes(self, met: MetField) -> None:
        ref = self.training_met
        for name in _MET_FIELDS:
            a, b = getattr(met, name), getattr(ref, name)
            if (a is None) != (b is None) or (
                a is not None and tuple(jnp.shape(a)) != tuple(jnp.shape(b))
            ):
                sa = None if a is None else tuple(jnp.shape(a))
                sb = None if b is None else tuple(jnp.shape(b))
                raise ValueError(
                    f"`met.{name}` has shape {sa} but this emulator was trained under a fixed "
                    f"met with `{name}` of shape {sb}; mismatched met shapes cannot be emulated"
                )
        if self.met_mismatch == "ignore":
            return
        arrays = [(n, getattr(met, n), getattr(ref, n)) for n in _MET_FIELDS]
        arrays = [(n, a, b) for n, a, b in arrays if a is not None]
        if not all(_is_concrete(a) for _, a, _ in arrays):
            return
        differ = [
            n
            for n, a, b in arrays
            if not np.allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0.0)
        ]
        if differ:
            msg = (
                f"`met` differs from the fixed training met in {differ}; the emulator ignores "
                "met and answers for the training met"
            )
            if self.met_mismatch == "raise":
                raise ValueError(msg)
            warnings.warn(msg, MetMismatchWarning, stacklevel=4)

    def inputs(self, params: Mapping[str, Array], met: MetField) -> Float[Array, " n_in"]:
        """The raw network input ``[theta_unconstrained, met_features]`` (no checks)."""
        z = self.param_spec.to_unconstrained(params)
        if self.met_features is None:
            return z
        f = jnp.asarray(self.met_features(met), z.dtype)
        return jnp.concatenate([z, f])

    def outside_training_box(self, x: Float[Array, "... n_in"]) -> Bool[Array, "..."]:
        """True where raw inputs ``x`` leave the training box (any component)."""
        return jnp.any((x < self.input_lower) | (x > self.input_upper), axis=-1)

    def check_inputs(self, params: Mapping[str, Array], met: MetField) -> None:
        """Run the support, met and out-of-distribution checks (on concrete inputs)."""
        self._checked_inputs(params, met)

    def _checked_inputs(self, params, met):
        if not isinstance(met, MetField):
            raise TypeError(f"`met` must be a MetField, got {type(met).__name__}")
        spec = self.param_spec
        spec.validate(params)
        if spec.batch_shape(params) != ():
            raise ValueError(
                f"`params` must be one parameter set (no batch axes; vmap for batches), got "
                f"batch shape {spec.batch_shape(params)}"
            )
        spec.check_in_support(params)
        if self.training_met is not None:
            self._check_met_shapes(met)
        x = self.inputs(params, met)
        if self.ood == "ignore":
            return x
        if _is_concrete(x):
            xs = np.asarray(x)
            lo, hi = np.asarray(self.input_lower), np.asarray(self.input_upper)
            bad = (xs < lo) | (xs > hi)
            if np.any(bad):
                n_p = spec.size
                labels = list(spec.flat_names) + (
                    [] if self.met_features is None else list(self.met_features.names)
                )
                which = [labels[i] for i in np.flatnonzero(bad)]
                msg = (
                    f"emulator inputs {which} lie outside the range of the training draws "
                    f"(unconstrained params: first {n_p} inputs); the emulator is extrapolating"
                )
                if self.ood == "raise":
                    raise ValueError(f"`params`/`met` out of distribution: {msg}")
                warnings.warn(msg, OutOfDistributionWarning, stacklevel=4)
        elif self.ood == "raise":
            x = error_if(
                x,
                self.outside_training_box(x),
                "emulator inputs outside the range of the training draws (ood='raise')",
            )
        return x

    def with_policies(
        self, *, ood: Policy | None = None, met_mismatch: Policy | None = None
    ) -> "NeuralForward":
        """A copy with other out-of-distribution / met-mismatch policies."""
        changes = {}
        if ood is not None:
            changes["ood"] = ood
        if met_mismatch is not None:
            changes["met_mismatch"] = met_mismatch
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ evaluation

    def predict_flat(self, x: Float[Array, " n_in"]) -> Float[Array, " P"]:
        """Flat physical outputs for raw inputs ``x`` (no checks; vmap-friendly)."""
        t = self.net(self.input_norm(x))
        return self.output_transform.inverse(t).astype(self.template.values.dtype)

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        x = self._checked_inputs(params, met)
        y = _predict_one(self, x).reshape(self.template.values.shape)
        return self.template.replace(values=y)


@eqx.filter_jit
def _predict_one(model: NeuralForward, x):
    # jitted so that eager calls run one compiled program (nested jit is free)
    return model.predict_flat(x)
