"""Model-based inference: the oracle of the six-step cycle.

Every analysis inverts any :class:`plumax_core.AbstractForwardModel` and returns a
:class:`plumax_core.Posterior` (mean, covariance operator and/or samples, provenance)
in the unconstrained space of the model's ``param_spec``.

* problem: :class:`Problem` (forward model + met + observations + prior + likelihood);
* analyses: :class:`OptimalInterpolation`, :class:`ThreeDVar`, :class:`StrongFourDVar`,
  :class:`WeakFourDVar`, :class:`IncrementalFourDVar`, :class:`NUTSOracle`;
  :class:`OptimalInterpolation` also runs the regional analytic flux inversion (a
  sparse footprint ``H``, a Kronecker Matérn ``B`` from :mod:`plumax_core.linalg`):
  ``covariance="operator"`` keeps ``P*`` as a low-rank update of ``B``, and its
  ``posterior_std``, ``averaging_kernel`` and ``dfs`` (DOFS) need no ``D x D`` work;
* adapters: :class:`LaplaceCovariance`, :class:`GaussNewtonHessian`,
  :class:`EnsembleCovariance`, :func:`select_adapter`;
* export: :class:`GaussianMarkLikelihood`;
* diagnostics: :func:`averaging_kernel`, :func:`dfs`, :func:`dfs_hutchinson`,
  :func:`reduced_chi2`, :func:`posterior_std_maps` (per-parameter std maps);
* posterior checks: :func:`inference_diagnostics` (:func:`convergence_check`,
  :func:`contraction_check` / :func:`posterior_contraction`, :func:`fit_check`);
* validation: :func:`run_sbc` (over a core :class:`plumax_core.SimulationBank`),
  :func:`compare_to_oracle` and the re-exported :mod:`plumax_core.gates`.
"""

import importlib.metadata

from plumax_core import gates as gates
from plumax_core.gates import (
    GateResult as GateResult,
    dot_product_test as dot_product_test,
    jacobian_probe_error as jacobian_probe_error,
    posterior_agreement as posterior_agreement,
    sbc_ranks as sbc_ranks,
    sbc_uniformity as sbc_uniformity,
    tarp_coverage as tarp_coverage,
)

from ._adapters import (
    AbstractPosteriorAdapter as AbstractPosteriorAdapter,
    AdapterOutput as AdapterOutput,
    EnsembleCovariance as EnsembleCovariance,
    GaussNewtonHessian as GaussNewtonHessian,
    LaplaceCovariance as LaplaceCovariance,
    gaspari_cohn as gaspari_cohn,
    lanczos as lanczos,
    select_adapter as select_adapter,
)
from ._analysis import AbstractAnalysis as AbstractAnalysis
from ._checks import (
    FIT_ALPHA as FIT_ALPHA,
    MAX_RHAT as MAX_RHAT,
    MIN_CONTRACTION as MIN_CONTRACTION,
    InferenceDiagnostics as InferenceDiagnostics,
    contraction_check as contraction_check,
    convergence_check as convergence_check,
    fit_check as fit_check,
    inference_diagnostics as inference_diagnostics,
    posterior_contraction as posterior_contraction,
)
from ._diagnostics import (
    averaging_kernel as averaging_kernel,
    dfs as dfs,
    dfs_hutchinson as dfs_hutchinson,
    reduced_chi2 as reduced_chi2,
)
from ._export import (
    SCHEMA as SCHEMA,
    GaussianMarkLikelihood as GaussianMarkLikelihood,
)
from ._map import MAPResult as MAPResult
from ._mixture import LaplaceMixture as LaplaceMixture
from ._nuts import NUTSOracle as NUTSOracle, numpyro_model as numpyro_model
from ._oi import OptimalInterpolation as OptimalInterpolation
from ._problem import Problem as Problem
from ._validation import (
    ComparisonTable as ComparisonTable,
    SBCResult as SBCResult,
    compare_to_oracle as compare_to_oracle,
    run_sbc as run_sbc,
)
from ._var3d import ThreeDVar as ThreeDVar
from ._var4d import (
    AbstractTimeSteppingModel as AbstractTimeSteppingModel,
    IncrementalFourDVar as IncrementalFourDVar,
    StrongFourDVar as StrongFourDVar,
    WeakFourDVar as WeakFourDVar,
    adjoint_test as adjoint_test,
    cost_gradient as cost_gradient,
    posterior_std_maps as posterior_std_maps,
)

__all__ = [
    "AbstractAnalysis",
    "AbstractPosteriorAdapter",
    "AbstractTimeSteppingModel",
    "AdapterOutput",
    "adjoint_test",
    "averaging_kernel",
    "compare_to_oracle",
    "ComparisonTable",
    "contraction_check",
    "convergence_check",
    "cost_gradient",
    "dfs",
    "dfs_hutchinson",
    "dot_product_test",
    "EnsembleCovariance",
    "FIT_ALPHA",
    "fit_check",
    "gaspari_cohn",
    "GateResult",
    "gates",
    "GaussianMarkLikelihood",
    "GaussNewtonHessian",
    "IncrementalFourDVar",
    "inference_diagnostics",
    "InferenceDiagnostics",
    "jacobian_probe_error",
    "lanczos",
    "LaplaceCovariance",
    "MAPResult",
    "MAX_RHAT",
    "MIN_CONTRACTION",
    "numpyro_model",
    "NUTSOracle",
    "OptimalInterpolation",
    "posterior_agreement",
    "posterior_contraction",
    "posterior_std_maps",
    "Problem",
    "reduced_chi2",
    "run_sbc",
    "sbc_ranks",
    "sbc_uniformity",
    "SBCResult",
    "SCHEMA",
    "select_adapter",
    "StrongFourDVar",
    "tarp_coverage",
    "ThreeDVar",
    "LaplaceMixture",
    "WeakFourDVar",
]

__version__ = importlib.metadata.version("vardax-lite")
