"""How much work each step of the cycle does (:class:`CycleBudget`).

Plain configuration, no JAX: the command line reads it without importing the numerical
stack.
"""

import dataclasses
from typing import Any, Literal

__all__ = ["CycleBudget", "OracleMethod"]

OracleMethod = Literal["laplace", "nuts"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleBudget:
    """How much work each step of the cycle does.

    Attributes:
        pixels: problem size, read by the tier's setup: for the Gaussian tier the column
            image side (pixels; the image covers 200-1600 m downwind and ±300 m
            crosswind of the nominal source).
        n_cases: held-out cases for the posterior-agreement gates (steps 2, 4, 5).
        n_calibration: held-out simulations for SBC and TARP (step 5).
        oracle: ``"laplace"`` (MAP + Laplace, `OracleStrength.LAPLACE`) or ``"nuts"``
            (NUTS, `OracleStrength.SAMPLER`); the emulator inference uses the same.
        nuts_warmup, nuts_samples, nuts_chains: NUTS settings.
        n_emulator_train: simulations the emulator is trained on.
        n_emulator_test: held-out simulations for the emulator's accuracy gate.
        emulator_epochs: epoch limit of the emulator (early stopping on top).
        n_npe_train: simulations the flow is trained on.
        npe_epochs: epoch limit of the flow (early stopping on top).
        n_posterior_samples: draws per amortized posterior.
    """

    pixels: int = 16
    n_cases: int = 20
    n_calibration: int = 200
    oracle: OracleMethod = "nuts"
    nuts_warmup: int = 300
    nuts_samples: int = 400
    nuts_chains: int = 2
    n_emulator_train: int = 4000
    n_emulator_test: int = 200
    emulator_epochs: int = 150
    n_npe_train: int = 20000
    npe_epochs: int = 150
    n_posterior_samples: int = 1000

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "oracle":
                if v not in ("laplace", "nuts"):
                    raise ValueError(f"`oracle` must be 'laplace' or 'nuts', got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{f.name}` must be a positive int, got {v!r}")
        if self.pixels < 8:
            raise ValueError(f"`pixels` must be >= 8, got {self.pixels}")
        if self.n_calibration < 20:
            raise ValueError(f"`n_calibration` must be >= 20 (SBC), got {self.n_calibration}")

    @classmethod
    def fast(cls) -> "CycleBudget":
        """A reduced budget that finishes in a few minutes on 2 CPU cores."""
        return cls(
            pixels=12,
            n_cases=5,
            n_calibration=100,
            n_emulator_train=1500,
            n_emulator_test=100,
            emulator_epochs=60,
            n_npe_train=6000,
            npe_epochs=100,
            n_posterior_samples=500,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
