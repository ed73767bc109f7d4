"""Validation gates of the six-step cycle (docs/architecture.md: step 6 and the core contracts).

Statistics only: each gate takes plain arrays (or duck-typed posteriors / linear
operators) and returns a JSON-serialisable `GateResult`. No library imports another;
every library (and the `plumax` CLI) validates through these shared contracts.

* `posterior_agreement` — candidate vs oracle marginals: ``|Δmean| / σ_oracle <= 1`` and
  spread (CV) ratio ``<= 2``.
* `jacobian_probe_error` — relative operator-norm distance of two linearisations by
  random probing (the adjoint gate is 5%).
* `dot_product_test` — ``<J u, w> = <u, J^T w>``.
* `sbc_ranks` / `sbc_uniformity` — simulation-based calibration (Talts et al. 2018),
  χ² test failing at ``p < 0.01``.
* `tarp_coverage` — TARP expected coverage (Lemos et al. 2023).
"""

from ._agreement import posterior_agreement as posterior_agreement
from ._dot_product import dot_product_test as dot_product_test
from ._jacobian import jacobian_probe_error as jacobian_probe_error
from ._result import GateResult as GateResult
from ._sbc import (
    chi2_sf as chi2_sf,
    sbc_ranks as sbc_ranks,
    sbc_uniformity as sbc_uniformity,
)
from ._tarp import tarp_coverage as tarp_coverage

__all__ = [
    "GateResult",
    "chi2_sf",
    "dot_product_test",
    "jacobian_probe_error",
    "posterior_agreement",
    "sbc_ranks",
    "sbc_uniformity",
    "tarp_coverage",
]
