"""HITRAN line lists: the 160-character ``.par`` format and HAPI ``.data``/``.header`` tables.

Format reference: Rothman et al. (2005), "The HITRAN 2004 molecular spectroscopic
database", JQSRT 96, 139, Table 1 (the fixed-width 160-character record used since
HITRAN2004); HAPI (Kochanov et al. 2016, JQSRT 177, 15) writes the same records to
``<table>.data`` with a JSON ``<table>.header`` that lists the column order and
C-style formats (the field widths).
"""

from __future__ import annotations

import json
import os
import pathlib
import re

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

#: Fixed-width layout of the HITRAN2004+ 160-character record: name -> (start, stop).
PAR_FIELDS: dict[str, tuple[int, int]] = {
    "molec_id": (0, 2),
    "local_iso_id": (2, 3),
    "nu": (3, 15),
    "sw": (15, 25),
    "a": (25, 35),
    "gamma_air": (35, 40),
    "gamma_self": (40, 45),
    "elower": (45, 55),
    "n_air": (55, 59),
    "delta_air": (59, 67),
}

#: Isotopologue molar masses, g/mol: (HITRAN molecule id, local isotopologue id) -> mass.
#: Values as tabulated by HITRAN (hitran.org "Isotopologue metadata").
ISOTOPOLOGUE_MASS: dict[tuple[int, int], float] = {
    (1, 1): 18.010565,
    (1, 2): 20.014811,
    (1, 3): 19.01478,
    (1, 4): 19.01674,
    (2, 1): 43.98983,
    (2, 2): 44.993185,
    (2, 3): 45.994076,
    (2, 4): 44.994045,
    (6, 1): 16.0313,
    (6, 2): 17.034655,
    (6, 3): 17.037475,
    (6, 4): 18.04083,
}

_ISO_CHAR = {str(i): i for i in range(1, 10)} | {"0": 10, "A": 11, "B": 12}


class LineList(eqx.Module):
    """A set of spectral lines with HITRAN parameters at ``T_ref = 296 K``, ``p_ref = 1 atm``.

    Attributes (all shape ``(n_lines,)``, sorted by wavenumber):
        molecule: HITRAN molecule id (1 H2O, 2 CO2, 6 CH4, ...).
        isotopologue: HITRAN local isotopologue id.
        nu: vacuum wavenumber, cm⁻¹.
        sw: line intensity at 296 K, cm⁻¹/(molecule cm⁻²) (includes natural abundance).
        gamma_air, gamma_self: Lorentz HWHM at 1 atm, 296 K, cm⁻¹ atm⁻¹.
        elower: lower-state energy, cm⁻¹.
        n_air: temperature exponent of ``gamma_air``.
        delta_air: pressure shift at 296 K, cm⁻¹ atm⁻¹.
        mass: isotopologue molar mass, g/mol.
    """

    molecule: Int[Array, " n"]
    isotopologue: Int[Array, " n"]
    nu: Float[Array, " n"]
    sw: Float[Array, " n"]
    gamma_air: Float[Array, " n"]
    gamma_self: Float[Array, " n"]
    elower: Float[Array, " n"]
    n_air: Float[Array, " n"]
    delta_air: Float[Array, " n"]
    mass: Float[Array, " n"]

    def __check_init__(self):
        n = self.nu.shape
        for name in ("sw", "gamma_air", "gamma_self", "elower", "n_air", "delta_air", "mass"):
            if getattr(self, name).shape != n:
                raise ValueError(f"LineList.{name} must have shape {n}")
        if n[0] == 0:
            raise ValueError("LineList is empty")
        nu = np.asarray(self.nu)
        if np.any(np.diff(nu) < 0):
            raise ValueError("LineList.nu must be sorted ascending")
        if np.any(~np.isfinite(nu)) or np.any(np.asarray(self.sw) < 0):
            raise ValueError("LineList has non-finite wavenumbers or negative intensities")

    @property
    def n_lines(self) -> int:
        return int(self.nu.shape[0])

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> LineList:
        """Build from a dict of HITRAN column arrays (names as in :data:`PAR_FIELDS`)."""
        mol = np.asarray(columns["molec_id"], dtype=np.int32)
        iso = np.asarray(columns["local_iso_id"], dtype=np.int32)
        order = np.argsort(np.asarray(columns["nu"], dtype=np.float64), kind="stable")
        try:
            mass = np.array(
                [ISOTOPOLOGUE_MASS[(int(m), int(i))] for m, i in zip(mol, iso, strict=True)]
            )
        except KeyError as err:
            raise ValueError(f"no molar mass tabulated for isotopologue {err.args[0]}") from None

        def col(name):
            return jnp.asarray(np.asarray(columns[name], dtype=np.float64)[order])

        return cls(
            molecule=jnp.asarray(mol[order]),
            isotopologue=jnp.asarray(iso[order]),
            nu=col("nu"),
            sw=col("sw"),
            gamma_air=col("gamma_air"),
            gamma_self=col("gamma_self"),
            elower=col("elower"),
            n_air=col("n_air"),
            delta_air=col("delta_air"),
            mass=jnp.asarray(mass[order]),
        )

    def select(self, nu_min: float, nu_max: float) -> LineList:
        """The lines with ``nu_min <= nu <= nu_max`` (cm⁻¹)."""
        nu = np.asarray(self.nu)
        keep = (nu >= nu_min) & (nu <= nu_max)
        if not keep.any():
            raise ValueError(f"no lines between {nu_min} and {nu_max} cm-1")
        return LineList(**{f: getattr(self, f)[keep] for f in self.__dataclass_fields__})


def _parse_fixed(lines: list[str], fields: dict[str, tuple[int, int]], where: str) -> dict:
    cols: dict[str, list] = {k: [] for k in fields}
    for num, rec in enumerate(lines, 1):
        if not rec.strip():
            continue
        try:
            for name, (a, b) in fields.items():
                s = rec[a:b]
                if name == "local_iso_id":
                    cols[name].append(_ISO_CHAR[s.strip()])
                elif name == "molec_id":
                    cols[name].append(int(s))
                else:
                    cols[name].append(float(s))
        except (ValueError, KeyError):
            raise ValueError(
                f"{where}: line {num} is not a valid HITRAN record: {rec[:67]!r}"
            ) from None
    if not cols["nu"]:
        raise ValueError(f"{where}: no line records found")
    return {k: np.asarray(v) for k, v in cols.items()}


def read_par(path: str | os.PathLike) -> LineList:
    """Read a HITRAN2004+ 160-character ``.par`` file.

    Raises:
        ValueError: a record shorter than 160 characters or with unparsable numbers.
    """
    path = pathlib.Path(path)
    text = path.read_text().splitlines()
    recs = [r for r in text if r.strip()]
    for num, rec in enumerate(recs, 1):
        if len(rec) != 160:
            raise ValueError(
                f"`path` {path}: record {num} has {len(rec)} characters, the .par format has 160"
            )
    return LineList.from_columns(_parse_fixed(recs, PAR_FIELDS, str(path)))


_FMT = re.compile(r"%(-?\d+)(?:\.\d+)?[a-zA-Z]")


def read_hapi_table(folder: str | os.PathLike, table: str) -> LineList:
    """Read a HAPI table ``<folder>/<table>.data`` described by ``<table>.header`` (JSON).

    The header's ``order`` and ``format`` give each column's width; only the columns
    of :data:`PAR_FIELDS` are used.
    """
    folder = pathlib.Path(folder)
    hdr_path, data_path = folder / f"{table}.header", folder / f"{table}.data"
    if not hdr_path.is_file() or not data_path.is_file():
        raise ValueError(f"`table` {table!r}: {hdr_path} or {data_path} not found")
    header = json.loads(hdr_path.read_text())
    if header.get("table_type", "column-fixed") != "column-fixed":
        raise ValueError(f"{hdr_path}: only column-fixed tables are supported")
    pos, fields = 0, {}
    for name in header["order"]:
        m = _FMT.fullmatch(header["format"][name])
        if m is None:
            raise ValueError(f"{hdr_path}: cannot read format {header['format'][name]!r}")
        width = abs(int(m.group(1)))
        if name in PAR_FIELDS:
            fields[name] = (pos, pos + width)
        pos += width
    missing = set(PAR_FIELDS) - set(fields)
    if missing:
        raise ValueError(f"{hdr_path}: columns {sorted(missing)} missing")
    lines = [r for r in data_path.read_text().splitlines() if r.strip()]
    return LineList.from_columns(_parse_fixed(lines, fields, str(data_path)))


def fetch_hitran(
    molecule_id: int, isotopologue_id: int, nu_min: float, nu_max: float, *, folder: str
) -> LineList:  # pragma: no cover - needs network
    """Download lines from hitran.org with HAPI (optional ``hapi`` extra) and read them."""
    try:
        import hapi
    except ImportError as err:
        raise ImportError(
            "fetch_hitran needs the optional extra: pip install plumax-rtm[hapi]"
        ) from err
    hapi.db_begin(str(folder))
    name = f"M{molecule_id}I{isotopologue_id}"
    hapi.fetch(name, molecule_id, isotopologue_id, nu_min, nu_max)
    return read_hapi_table(folder, name)
