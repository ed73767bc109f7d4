"""Render the example figures of the Tier I transport pages (matplotlib, Agg).

uv run python docs/transport/make_figures.py
"""

import pathlib

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plumax_core import MetField  # noqa: E402
from plumax_transport import ColumnImage, GaussianPlume, GaussianPuff, OUMeander  # noqa: E402

IMG = pathlib.Path(__file__).resolve().parent / "img"


def plume_figure():
    x = np.linspace(-200.0, 2000.0, 221)
    y = np.linspace(-600.0, 600.0, 121)
    met = MetField.uniform(4.0, 250.0, stability="C", pblh=800.0)
    model = GaussianPlume(ColumnImage(x, y, units="ppm_m"))
    img = model({"Q": 0.1, "x0": 0.0, "y0": 0.0, "H": 5.0}, met).values
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    pc = ax.pcolormesh(x, y, np.asarray(img), shading="auto", cmap="magma", vmax=150)
    fig.colorbar(pc, ax=ax, label="column enhancement (ppm·m)")
    ax.plot(0, 0, "c*", ms=10)
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        aspect="equal",
        title="GaussianPlume: Q = 0.1 kg/s, 4 m/s from 250°, class C",
    )
    fig.tight_layout()
    fig.savefig(IMG / "gaussian_plume_column.png")


def puff_figure():
    x = np.linspace(-300.0, 2500.0, 225)
    y = np.linspace(-500.0, 1300.0, 145)
    t = np.array([0.0, 300.0, 600.0, 900.0])
    met = MetField.from_timeseries(
        t,
        np.array([3.0, 4.0, 4.0, 3.0]),
        np.array([290.0, 270.0, 250.0, 240.0]),
        stability="C",
        pblh=800.0,
    )
    import jax.random as jr

    model = GaussianPuff(
        ColumnImage(x, y, units="ppm_m"),
        [0.0, 450.0, 900.0],
        obs_time=900.0,
        puff_interval=10.0,
        meander=OUMeander(0.5, 120.0, key=jr.key(1)),
    )
    img = model({"Q": jnp.array([0.1, 0.3]), "x0": 0.0, "y0": 0.0, "H": 5.0}, met).values
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    pc = ax.pcolormesh(x, y, np.asarray(img), shading="auto", cmap="magma", vmax=100)
    fig.colorbar(pc, ax=ax, label="column enhancement (ppm·m)")
    ax.plot(0, 0, "c*", ms=10)
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        aspect="equal",
        title="GaussianPuff: turning wind, Q = 0.1 then 0.3 kg/s, t = 900 s",
    )
    fig.tight_layout()
    fig.savefig(IMG / "gaussian_puff_column.png")


if __name__ == "__main__":
    IMG.mkdir(exist_ok=True)
    plume_figure()
    puff_figure()
