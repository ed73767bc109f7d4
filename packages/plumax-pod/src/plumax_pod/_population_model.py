"""A population model made of any intensity, any mark family and any POD(s).

`PopulationModel` takes *template* components (an intensity, a mark distribution and one
POD per instrument, built with the values of every fixed field) and a list of `Free`
declarations naming the fields to fit, e.g. ``"intensity.amplitude"``, ``"marks.alpha"``,
``"pod.q50"`` (shared by every instrument) or ``"pod1.q50"`` (instrument 1 only). Each free
field gets a `plumax_core.Param` (support and transform) and an independent normal prior on
its *unconstrained* value, so the log posterior is smooth and proper for MAP + Laplace and
NUTS (`fit_map_laplace`, `fit_nuts`). The likelihood is the thinned marked TPP
likelihood of `AbstractPopulationModel`.

Self-exciting and renewal intensities (`HawkesIntensity`, `WeibullRenewalIntensity`) are
conditioned on their ``history`` field: build the template with the *detected* event
times. Only detected events are then seen as parents, i.e. excitation by missed events is
ignored (a thinned Hawkes process is not itself Hawkes); document this in results.
"""

import dataclasses
import math
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import Param, ParamSpec

from ._fit import AbstractPopulationModel, PopulationData
from ._intensity import AbstractIntensity
from ._marks import AbstractMarkDistribution
from ._pod import AbstractPOD

__all__ = ["Free", "PopulationModel"]

_COMPONENTS = ("intensity", "marks", "pod")


class Free(eqx.Module):
    """A field of a population component to fit, with its support and prior.

    Attributes:
        path: ``"<component>.<field>"`` with component ``intensity``, ``marks``, ``pod``
            (every instrument's POD shares the value) or ``pod<k>`` (instrument ``k``).
        lower, upper: support of the physical value (``-inf``/``inf`` = unbounded).
        log: fit ``log(value)`` (needs ``lower >= 0``; the natural choice for rates,
            scales and exponents). With finite ``lower`` and ``upper`` (and ``log=False``)
            the transform is the scaled logit of `plumax_core.Param`.
        prior_center: prior centre in physical units; None = the template's value.
        prior_sd: prior standard deviation of the *unconstrained* value (for ``log=True``
            this is in e-folds).
    """

    path: str = eqx.field(static=True)
    lower: float = eqx.field(static=True, default=-math.inf)
    upper: float = eqx.field(static=True, default=math.inf)
    log: bool = eqx.field(static=True, default=False)
    prior_center: float | None = eqx.field(static=True, default=None)
    prior_sd: float = eqx.field(static=True, default=2.0)

    def __check_init__(self):
        if not isinstance(self.path, str) or self.path.count(".") != 1:
            raise ValueError(f"`path` must look like 'component.field', got {self.path!r}")
        comp = self.path.split(".")[0]
        if not (comp in _COMPONENTS or (comp.startswith("pod") and comp[3:].isdigit())):
            raise ValueError(
                f"`path` {self.path!r}: component must be intensity, marks, pod or pod<k>"
            )
        if not (math.isfinite(self.prior_sd) and self.prior_sd > 0):
            raise ValueError(f"`prior_sd` of {self.path!r} must be > 0, got {self.prior_sd}")
        if self.prior_center is not None and not math.isfinite(self.prior_center):
            raise ValueError(f"`prior_center` of {self.path!r} must be finite")

    @property
    def name(self) -> str:
        """The parameter name: the path with ``.`` replaced by ``_`` (``intensity_rate``)."""
        return self.path.replace(".", "_")


def _get(component, field: str, path: str):
    fields = {f.name: f for f in dataclasses.fields(component)}
    if field not in fields:
        raise ValueError(
            f"`free` names {path!r}, but {type(component).__name__} has no field {field!r} "
            f"(fields: {sorted(fields)})"
        )
    if fields[field].metadata.get("static", False):
        raise ValueError(
            f"{path!r} is a static field of {type(component).__name__} (a structural "
            "setting such as a period); it cannot be fitted"
        )
    value = getattr(component, field)
    if not isinstance(value, (jnp.ndarray, np.ndarray, float, int)):
        raise ValueError(f"{path!r} is not a numeric field of {type(component).__name__}")
    return jnp.asarray(value, float)


class PopulationModel(AbstractPopulationModel):
    """Any intensity x marks x POD population model with named free fields.

    Attributes:
        intensity, marks: template components (fixed fields keep their values).
        pods: one template POD per instrument.
        free: the `Free` declarations, in parameter order.
        param_spec: derived; parameter names are the ``free`` paths with ``.`` replaced
            by ``_`` (``"intensity.rate"`` -> ``intensity_rate``).

    Example:
        >>> model = PopulationModel(                                     # doctest: +SKIP
        ...     DiurnalIntensity(rate=1e-4, amplitude=0.5, t_peak=12 * 3600.0),
        ...     LognormalMarks(mu=-3.0, sigma=1.0),
        ...     HillPOD(0.08, 2.0),
        ...     free=[Free("intensity.rate", lower=0.0, log=True),
        ...           Free("intensity.amplitude", lower=0.0, upper=1.0, prior_sd=1.5),
        ...           Free("intensity.t_peak", lower=0.0, upper=86400.0, prior_sd=1.5),
        ...           Free("marks.mu", prior_sd=5.0),
        ...           Free("marks.sigma", lower=0.0, log=True, prior_sd=1.0)])
        >>> post = fit_map_laplace(model, data)                          # doctest: +SKIP
    """

    intensity: AbstractIntensity
    marks: AbstractMarkDistribution
    pods: tuple[AbstractPOD, ...]
    free: tuple[Free, ...]
    param_spec: ParamSpec
    prior_loc: Float[Array, " D"]
    prior_scale: Float[Array, " D"]

    def __init__(
        self,
        intensity: AbstractIntensity,
        marks: AbstractMarkDistribution,
        pods: AbstractPOD | Sequence[AbstractPOD],
        *,
        free: Sequence[Free],
    ):
        if not isinstance(intensity, AbstractIntensity):
            raise TypeError(f"`intensity` must be an AbstractIntensity, got {type(intensity)}")
        if not isinstance(marks, AbstractMarkDistribution):
            raise TypeError(f"`marks` must be an AbstractMarkDistribution, got {type(marks)}")
        pods = (pods,) if isinstance(pods, AbstractPOD) else tuple(pods)
        if not pods or not all(isinstance(p, AbstractPOD) for p in pods):
            raise TypeError("`pods` must be an AbstractPOD or a non-empty sequence of them")
        free = tuple(free)
        if not free or not all(isinstance(f, Free) for f in free):
            raise ValueError("`free` must be a non-empty sequence of Free")
        paths = [f.path for f in free]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"`free` repeats {dupes}")
        self.intensity, self.marks, self.pods, self.free = intensity, marks, pods, free
        params, loc, scale = [], [], []
        for f in free:
            comp, field = f.path.split(".")
            current = _get(self._component(comp, f.path), field, f.path)
            p = Param(f.name, shape=current.shape, lower=f.lower, upper=f.upper, log=f.log)
            center = current if f.prior_center is None else jnp.full(current.shape, f.prior_center)
            if np.any(np.asarray(center) <= f.lower) or np.any(np.asarray(center) >= f.upper):
                raise ValueError(
                    f"the prior centre of {f.path!r} ({np.asarray(center)}) must lie strictly "
                    f"inside ({f.lower}, {f.upper}); set `prior_center` or the template value"
                )
            params.append(p)
            loc.append(jnp.ravel(p.inverse_transform(center)))
            scale.append(jnp.full(max(current.size, 1), f.prior_sd))
        self.param_spec = ParamSpec(tuple(params))
        self.prior_loc = jnp.concatenate(loc)
        self.prior_scale = jnp.concatenate(scale)

    def _component(self, comp: str, path: str):
        if comp == "intensity":
            return self.intensity
        if comp == "marks":
            return self.marks
        if comp == "pod":
            return self.pods[0]
        k = int(comp[3:])
        if k >= len(self.pods):
            raise ValueError(f"`free` names {path!r} but there are {len(self.pods)} PODs")
        return self.pods[k]

    @property
    def n_instruments(self) -> int:
        return len(self.pods)

    def build(self, params):
        intensity, marks, pods = self.intensity, self.marks, list(self.pods)
        for f in self.free:
            comp, field = f.path.split(".")
            value = jnp.asarray(params[f.name])

            def setter(obj, field=field, value=value):
                old = getattr(obj, field)
                return eqx.tree_at(
                    lambda m: getattr(m, field), obj, value.astype(jnp.result_type(old, value))
                )

            if comp == "intensity":
                intensity = setter(intensity)
            elif comp == "marks":
                marks = setter(marks)
            elif comp == "pod":
                pods = [setter(p) for p in pods]
            else:
                k = int(comp[3:])
                pods[k] = setter(pods[k])
        return intensity, marks, tuple(pods)

    def log_prior_unconstrained(self, z):
        r = (z - self.prior_loc) / self.prior_scale
        return jnp.sum(-0.5 * r**2 - jnp.log(self.prior_scale)) - 0.5 * z.size * math.log(
            2 * math.pi
        )

    def initial_params(self, data: PopulationData) -> dict[str, Array]:
        """The prior centres (physical units): the optimiser's starting point."""
        del data
        return self.param_spec.from_unconstrained(self.prior_loc)
