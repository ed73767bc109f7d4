"""The CLI chain on a radiance overpass: ``simulate --radiance`` -> ``retrieve`` -> ``invert``.

``plumax simulate --radiance --seed N`` writes the scene :func:`plumax.pipelines.
simulate_radiance` makes from :func:`plumax.pipelines.radiance_keys` (N), the keys
``plumax demo --seed N`` uses, so the CLI and the demo draw the same overpass; the
retrieved file then inverts to the posterior the pipelines give in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from plumax import pipelines as pl

ARGS = ("--q-kgh", "1000", "--pixels", "16", "--extent", "960", "--upwind", "180")


@pytest.fixture(scope="module")
def chain(tmp_path_factory, plumax_cli) -> Path:
    d = tmp_path_factory.mktemp("radiance-chain")
    r = plumax_cli(
        "simulate", "overpass.nc", "--radiance", *ARGS, "--seed", "3",
        root=d, outputs=["overpass.nc"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "EMIT-like radiance overpass" in r.stdout
    r = plumax_cli(
        "retrieve", "overpass.nc", "--out", "retrieved.nc",
        root=d, inputs=["overpass.nc"], outputs=["retrieved.nc"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = plumax_cli(
        "invert", "retrieved.nc", "--out", "post.json", "--prior-q-kgh", "500",
        root=d, inputs=["retrieved.nc"], outputs=["post.json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return d


def test_the_file_is_the_pipeline_scene_of_the_seed(chain):
    key_surface, key_noise = pl.radiance_keys(3)
    scene = pl.simulate_radiance(
        q_kgh=1000.0,
        geometry=pl.default_geometry(16, extent=960.0, upwind=180.0),
        key_surface=key_surface,
        key_noise=key_noise,
    )
    with xr.open_dataset(chain / "overpass.nc") as ds:
        np.testing.assert_array_equal(ds["radiance"].values, np.asarray(scene.radiance.values))
        np.testing.assert_array_equal(ds["albedo"].values, scene.albedo)
        assert ds.attrs["noise_seed"] == 3 and ds.attrs["true_emission_rate_kg_h"] == 1000.0


def test_the_chain_inverts_like_the_pipelines_in_memory(chain):
    with xr.open_dataset(chain / "overpass.nc") as ds:
        scene = pl.read_radiance_scene(ds.load())
    ret = pl.retrieve(scene)
    with xr.open_dataset(chain / "retrieved.nc") as ds:
        np.testing.assert_allclose(
            ds["values"].values, np.asarray(ret.observations().values), rtol=1e-6, atol=1e-6
        )
    model, stds = ret.inversion_model()  # what the demo inverts: with its nuisances
    assert set(stds) == {"log_gain", "offset"}
    prior = pl.plume_prior(model.param_spec, q_kgh=500.0, nuisance_std=stds)
    inv = pl.invert(ret.observations(), scene.met, model, prior=prior, start=ret.starts())
    post = json.loads((chain / "post.json").read_text())
    for name in ("Q", "x0", "y0", "log_gain", "offset"):
        assert post["summary"][name]["median"] == pytest.approx(
            inv.summary[name]["median"], rel=1e-4, abs=1e-3
        ), name


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--noise", "5"), "--noise is a column image's noise"),
        (("--upwind", "2000"), "--upwind must be in [0, --extent)"),
        (("--q-kgh", "0"), "(emission rate) must be finite and > 0 kg/h"),
    ],
)
def test_bad_radiance_options_are_named(tmp_path, plumax_cli, extra, needle):
    r = plumax_cli(
        "simulate", "x.nc", "--radiance", "--pixels", "8", *extra, root=tmp_path
    )  # fmt: skip
    assert r.exit_code == 1
    assert needle in r.stderr
    assert not (tmp_path / "x.nc").exists()
