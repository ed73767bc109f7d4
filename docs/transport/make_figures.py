"""Render the example figures of the transport pages, Tiers I to III (matplotlib, Agg).

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


def lagrangian_figure():
    """Tier II: particles beside the plume, one column's footprint, a twin inversion."""
    import jax
    import jax.random as jr

    import vardax_lite as vx
    from plumax_core import linalg
    from plumax_transport import ColumnReceptors, LagrangianParticles, backward_footprints

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6), dpi=100)
    # particles and plume, one source
    met = MetField.uniform(4.0, 270.0, obukhov_length=-50.0, pblh=1000.0, z0=0.1)
    x = np.linspace(25.0, 2000.0, 80)
    y = np.linspace(-500.0, 500.0, 41)
    geometry = ColumnImage(x, y)
    params = {"Q": 0.1, "x0": 0.0, "y0": 0.0, "H": 10.0}
    particles = LagrangianParticles(geometry, key=jr.key(0), n_particles=2000)(params, met)
    plume = GaussianPlume(geometry)(params, met)
    ax = axes[0]
    levels = [10.0, 40.0]
    pc = ax.pcolormesh(x, y, np.asarray(particles.values), shading="auto", cmap="magma", vmax=150)
    ax.contour(x, y, np.asarray(particles.values), levels=levels, colors="w", linewidths=0.8)
    ax.contour(x, y, np.asarray(plume.values), levels=levels, colors="c", linewidths=0.8)
    fig.colorbar(pc, ax=ax, label="column (ppm·m)")
    ax.set(xlabel="x (m)", ylabel="y (m)", title="particles (white) and plume (cyan): 10, 40 ppm·m")
    # a footprint and a twin inversion (float64, as the docs advise)
    with jax.enable_x64(True):
        met = MetField.uniform(5.0, 270.0, obukhov_length=-100.0, pblh=1000.0, z0=0.1)
        edges = np.linspace(-20e3, 20e3, 21)
        centres = 0.5 * (edges[1:] + edges[:-1])
        rng = np.random.default_rng(0)
        n = 120
        receptors = ColumnReceptors(
            rng.uniform(-10e3, 20e3, n), rng.uniform(-15e3, 15e3, n), units="xch4_ppb"
        )
        fp = backward_footprints(
            receptors,
            met,
            x=edges,
            y=edges,
            time=np.full(n, 3 * 3600.0),
            duration=3 * 3600.0,
            dt=20.0,
            n_particles=100,
            key=jr.key(0),
        )
        truth = np.full((20, 20), 1e-7)
        truth[8:10, 5:7] = 1e-6
        obs = fp.apply(truth) + rng.normal(0.0, 0.5, n)
        prior = linalg.separable_matern32(centres, centres, 4e3, 5e-7)
        oi = vx.OptimalInterpolation(
            fp.operator, np.eye(n) * 0.25, prior, np.full(400, 1e-7), covariance="operator"
        )
        flux = np.asarray(oi.posterior(obs).mean).reshape(20, 20)
        one = np.asarray(fp.dense())[int(np.argmax(receptors.x))].reshape(20, 20)
    km = edges / 1e3
    ax = axes[1]
    pc = ax.pcolormesh(km, km, np.where(one > 0, one, np.nan), cmap="viridis")
    fig.colorbar(pc, ax=ax, label=fp.units)
    ax.set(xlabel="x (km)", ylabel="y (km)", aspect="equal", title="footprint of one column")
    ax = axes[2]
    pc = ax.pcolormesh(km, km, flux * 1e6, cmap="magma", vmin=0)
    ax.plot(receptors.x / 1e3, receptors.y / 1e3, "c.", ms=2)
    fig.colorbar(pc, ax=ax, label="posterior flux (mg m-2 s-1)")
    ax.set(xlabel="x (km)", ylabel="y (km)", aspect="equal", title="twin inversion, 120 columns")
    fig.tight_layout()
    fig.savefig(IMG / "lagrangian.png")


def eulerian_figure():
    """Tier III: the column of a steady EulerianFV plume beside the constant-K closed form."""
    from plumax_transport import ConstantK, EulerianFV, FVGrid

    met = MetField.uniform(5.0, 270.0, stability="D", pblh=800.0)
    grid = FVGrid(
        np.arange(-50.0, 550.0, 20.0),
        np.arange(-190.0, 200.0, 20.0),
        [0.0, 10.0, 25.0, 45.0, 75.0, 120.0, 190.0, 300.0, 500.0],
    )
    x, y = np.asarray(grid.x), np.asarray(grid.y)
    kh, u, q = 20.0, 5.0, 0.1
    model = EulerianFV(
        ColumnImage(x, y, units="kg_m2"),
        grid,
        diffusivity=ConstantK(kh=kh, kz=2.0),
        air_density="uniform",
    )
    col = np.asarray(model({"Q": q, "x0": 0.0, "y0": 0.0, "H": 10.0}, met).values) * 1e3
    xp = np.where(x > 0, x, np.nan)
    sy = np.sqrt(2 * kh * xp / u)
    exact = 1e3 * q / (np.sqrt(2 * np.pi) * u * sy) * np.exp(-(y[:, None] ** 2) / (2 * sy**2))
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.6), dpi=100)
    ax = axes[0]
    pc = ax.pcolormesh(x, y, col, shading="auto", cmap="magma", vmax=0.4)
    levels = [0.03, 0.1]
    ax.contour(x, y, col, levels=levels, colors="w", linewidths=0.8)
    ax.contour(x, y, exact, levels=levels, colors="c", linewidths=0.8, linestyles="--")
    ax.plot(0, 0, "c*", ms=10)
    fig.colorbar(pc, ax=ax, label="column (g/m²)")
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        aspect="equal",
        title="EulerianFV (white), closed form (cyan): 0.03, 0.1 g/m²",
    )
    ax = axes[1]
    for xi, c in ((200.0, "C0"), (300.0, "C1"), (400.0, "C2")):
        i = int(np.argmin(np.abs(x - xi)))
        ax.plot(y, col[:, i], "o", color=c, ms=3, label=f"x = {x[i]:.0f} m")
        ax.plot(y, exact[:, i], "-", color=c, lw=1)
    ax.set(
        xlabel="y (m)",
        ylabel="column (g/m²)",
        title="crosswind profiles: EulerianFV (dots), closed form (lines)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "eulerian.png")


if __name__ == "__main__":
    IMG.mkdir(exist_ok=True)
    plume_figure()
    puff_figure()
    lagrangian_figure()
    eulerian_figure()
