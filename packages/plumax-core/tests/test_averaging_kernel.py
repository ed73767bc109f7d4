"""`AveragingKernelOperator` and `regrid_matrix` against closed forms and NumPy.

The operator is the standard column averaging-kernel form
``XCH4 = y_a + sum_i h_i a_i (x_i - x_a,i)`` with ``h_i = d_i / sum_j d_j`` (dry-air
sub-columns); with the prior as sub-columns ``c_i`` it equals the sum over sub-columns
``(sum_i c_i + a_i (1e-9 x_i d_i - c_i)) / sum_i d_i * 1e9`` of the Integrated Methane
Inversion's TROPOMI operator (github.com/geoschem/integrated_methane_inversion,
``TROPOMI_operator.py``, citing eq. 46 of the TROPOMI methane ATBD, SRON-S5P-LEV2-RP-001).
The regridding reference here is written independently of the operator: it merges the
two pressure grids and averages the model values over the merged sub-layers with
pressure weights (the merge-and-average of IMI's ``remap``), whereas the operator builds
an overlap matrix. The TROPOMI-like layer geometry (12 layers, 13 edges
``p_k = p_surf - k * dp``) follows the S5P L2 methane product as read by IMI and HARP.
"""

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from plumax_core import AveragingKernelOperator, Observations, gates, regrid_matrix

NL = 12  # TROPOMI CH4 retrieval layers


def _tropomi_like(rng, npix, *, surface_first=True):
    """Retrieval geometry: equidistant pressure layers from the surface, TROPOMI-style."""
    ps = rng.uniform(7.0e4, 1.02e5, npix)
    dp = (ps - rng.uniform(0.0, 100.0, npix)) / NL
    edges = ps[:, None] - np.arange(NL + 1)[None, :] * dp[:, None]  # surface first
    d = dp[:, None] / 9.80665 / 0.0289644 * rng.uniform(0.97, 1.0, (npix, NL))  # mol m-2
    a = rng.uniform(0.4, 1.3, (npix, NL))
    xa = rng.uniform(1600.0, 1900.0, (npix, NL))  # ppb
    if not surface_first:
        edges, d, a, xa = edges[:, ::-1], d[:, ::-1], a[:, ::-1], xa[:, ::-1]
    return a, xa, d, edges


def _model_edges(rng, npix, nmodel=30):
    """Hybrid-like model edges (surface first) whose surface differs from the retrieval's."""
    ps = rng.uniform(6.8e4, 1.04e5, npix)
    eta = np.sort(rng.uniform(0.0, 1.0, (npix, nmodel - 1)), axis=1)[:, ::-1]
    top = 1.0  # Pa
    inner = top + (ps[:, None] - top) * eta
    return np.concatenate([ps[:, None], inner, np.full((npix, 1), top)], axis=1)


def _reference_regrid(ret_edges, mod_edges, x_model):
    """Merge both grids, give each merged sub-layer its model value (the nearest model
    layer outside the model column), and take pressure-weighted means per retrieval layer."""
    out = np.empty(len(ret_edges) - 1)
    m_sorted = np.sort(mod_edges)
    x_by_low = x_model[np.argsort(np.minimum(mod_edges[:-1], mod_edges[1:]))]
    for i in range(len(ret_edges) - 1):
        lo, hi = sorted((ret_edges[i], ret_edges[i + 1]))
        cuts = np.unique(np.concatenate([[lo, hi], m_sorted[(m_sorted > lo) & (m_sorted < hi)]]))
        mids, widths = 0.5 * (cuts[1:] + cuts[:-1]), np.diff(cuts)
        k = np.clip(np.searchsorted(m_sorted, mids) - 1, 0, len(x_model) - 1)
        out[i] = np.sum(widths * x_by_low[k]) / np.sum(widths)
    return out


# --------------------------------------------------------------- closed forms


@pytest.mark.parametrize("surface_first", [True, False])
def test_identity_kernel_gives_the_pressure_weighted_column_mean(x64, surface_first):
    rng = np.random.default_rng(1)
    _, xa, d, edges = _tropomi_like(rng, 5, surface_first=surface_first)
    x = rng.uniform(1700.0, 2100.0, (5, NL))
    op = AveragingKernelOperator(np.ones((5, NL)), xa, d, edges)
    expected = np.sum(d * x, axis=1) / np.sum(d, axis=1)
    np.testing.assert_allclose(op(x).values, expected, rtol=1e-12)
    # the prior drops out entirely
    op2 = AveragingKernelOperator(np.ones((5, NL)), 0.5 * xa + 7.0, d, edges)
    np.testing.assert_allclose(op2(x).values, expected, rtol=1e-12)


def test_zero_kernel_returns_the_prior_column(x64):
    rng = np.random.default_rng(2)
    _, xa, d, edges = _tropomi_like(rng, 4)
    op = AveragingKernelOperator(np.zeros((4, NL)), xa, d, edges)
    out = op(rng.uniform(0.0, 5000.0, (4, NL))).values
    np.testing.assert_allclose(out, np.sum(d * xa, axis=1) / np.sum(d, axis=1), rtol=1e-12)
    given_ya = np.array([1800.0, 1810.0, 1820.0, 1830.0])
    op2 = AveragingKernelOperator(np.zeros((4, NL)), xa, d, edges, prior_xch4=given_ya)
    np.testing.assert_allclose(op2(np.zeros((4, NL))).values, given_ya)


def test_subcolumn_prior_matches_the_imi_subcolumn_formula(x64):
    rng = np.random.default_rng(3)
    a, xa_ppb, d, edges = _tropomi_like(rng, 6)
    c = xa_ppb * 1e-9 * d  # prior sub-columns, mol m-2
    x = rng.uniform(1700.0, 2100.0, (6, NL))
    op = AveragingKernelOperator(a, c, d, edges, prior_units="mol m-2")
    imi = np.sum(c + a * (x * 1e-9 * d - c), axis=1) / np.sum(d, axis=1) * 1e9
    np.testing.assert_allclose(op(x).values, imi, rtol=1e-12)
    np.testing.assert_allclose(op.prior, xa_ppb, rtol=1e-12)


# --------------------------------------------------------------- the twin


def test_tropomi_like_twin_matches_a_direct_numpy_calculation(x64):
    """A 3-D model field on its own levels -> operator == regrid by hand, then the formula."""
    rng = np.random.default_rng(4)
    npix, nmodel = 8, 30
    a, xa, d, edges = _tropomi_like(rng, npix)
    medges = _model_edges(rng, npix, nmodel)
    # a plume-like field: background + a near-surface enhancement
    x_model = 1850.0 + rng.normal(0.0, 5.0, (npix, nmodel))
    x_model[:, :4] += rng.uniform(0.0, 300.0, (npix, 1))
    op = AveragingKernelOperator(a, xa, d, edges, model_pressure_edges=medges)
    out = op(x_model)
    assert out.kind == "xch4_ppb" and out.dims == ("pixel",) and out.shape == (npix,)
    expected = np.empty(npix)
    for p in range(npix):
        x_ret = _reference_regrid(edges[p], medges[p], x_model[p])
        h = d[p] / d[p].sum()
        expected[p] = np.sum(h * xa[p]) + np.sum(h * a[p] * (x_ret - xa[p]))
    np.testing.assert_allclose(out.values, expected, rtol=1e-12)


def test_shared_model_edges_and_ppm_state(x64):
    rng = np.random.default_rng(5)
    a, xa, d, edges = _tropomi_like(rng, 3)
    shared = np.linspace(1.05e5, 0.0, 21)
    op = AveragingKernelOperator(a, xa, d, edges, model_pressure_edges=shared)
    x = rng.uniform(1.7, 2.1, (3, 20))  # ppm
    ref = op(x * 1000.0).values
    np.testing.assert_allclose(op(Observations(x, kind="concentration_ppm")).values, ref)
    with pytest.raises(ValueError, match="kind 'column_ppm_m'"):
        op(Observations(x, kind="column_ppm_m"))


# --------------------------------------------------------------- conservation


@st.composite
def _columns(draw, wider_model=False):
    n_ret = draw(st.integers(1, 15))
    n_mod = draw(st.integers(1, 40))
    p_top = draw(st.floats(0.0, 5.0e4))
    p_surf = p_top + draw(st.floats(1.0e3, 6.0e4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ret = np.sort(np.concatenate([[p_top, p_surf], rng.uniform(p_top, p_surf, n_ret - 1)]))
    lo, hi = (p_top * 0.5, p_surf * 1.2) if wider_model else (p_top, p_surf)
    mod = np.sort(np.concatenate([[lo, hi], rng.uniform(lo, hi, n_mod - 1)]))
    if np.any(np.diff(ret) <= 0) or np.any(np.diff(mod) <= 0):
        ret, mod = np.array([p_top, p_surf]), np.array([lo, hi])
    if draw(st.booleans()):
        ret = ret[::-1]
    if draw(st.booleans()):
        mod = mod[::-1]
    x = rng.uniform(-1.0e3, 1.0e4, len(mod) - 1)
    return ret, mod, x


@settings(max_examples=60, deadline=None)
@given(_columns())
def test_regridding_conserves_the_pressure_weighted_column(cols):
    ret, mod, x = cols
    w = regrid_matrix(ret[None], mod, extend_model_column=False)[0]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    x_ret = w @ x
    lhs = np.sum(np.abs(np.diff(ret)) * x_ret)
    rhs = np.sum(np.abs(np.diff(mod)) * x)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9 * np.sum(np.abs(np.diff(mod))))


@settings(max_examples=40, deadline=None)
@given(_columns(wider_model=True))
def test_regridding_conserves_the_model_column_over_the_retrieval_range(cols):
    ret, mod, x = cols
    top, bot = ret.min(), ret.max()
    clipped = np.clip(mod, top, bot)
    x_ret = regrid_matrix(ret[None], mod, extend_model_column=False)[0] @ x
    lhs = np.sum(np.abs(np.diff(ret)) * x_ret)
    rhs = np.sum(np.abs(np.diff(clipped)) * x)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9 * (bot - top) * np.abs(x).max())


def test_extension_fills_with_the_nearest_model_layer(x64):
    ret = np.array([[1.0e5, 5.0e4, 0.0]])
    mod = np.array([9.0e4, 5.0e4, 1.0e3])  # starts above the retrieval surface, ends below top
    w = regrid_matrix(ret, mod)
    np.testing.assert_allclose(w[0], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="do not cover the retrieval column"):
        regrid_matrix(ret, mod, extend_model_column=False)


# --------------------------------------------------------------- masks


def test_masked_pixels_with_fill_drop_out_of_the_likelihood(x64):
    rng = np.random.default_rng(6)
    a, xa, d, edges = _tropomi_like(rng, 5)
    medges = _model_edges(rng, 5)
    a[1] = np.nan
    d[3] = 9.96921e36  # netCDF fill left in by a careless reader
    edges[3] = np.nan
    medges[3] = np.nan
    mask = np.array([True, False, True, False, True])
    op = AveragingKernelOperator(a, xa, d, edges, model_pressure_edges=medges, mask=mask)
    x = 1850.0 + rng.normal(0.0, 10.0, (5, 30))
    out = op(x)
    np.testing.assert_array_equal(out.valid(), mask)
    assert np.all(np.isfinite(out.values))
    ref = AveragingKernelOperator(
        a[mask], xa[mask], d[mask], edges[mask], model_pressure_edges=medges[mask]
    )
    np.testing.assert_allclose(out.values[mask], ref(x[mask]).values, rtol=1e-12)
    # masked pixels contribute nothing to a Gaussian misfit, nor to its gradient
    obs = Observations(out.values + 3.0, kind="xch4_ppb", sigma=5.0, mask=mask, dims=("pixel",))

    def misfit(state):
        r = (op(state).values - obs.values) / obs.sigma_full()
        return 0.5 * jnp.sum(jnp.where(obs.valid(), r, 0.0) ** 2)

    g = jax.grad(misfit)(jnp.asarray(x))
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0)
    with pytest.raises(ValueError, match="`averaging_kernel` has non-finite values at 1 valid"):
        AveragingKernelOperator(a, xa, d, edges)


# --------------------------------------------------------------- contract


def _operator(rng, npix=6):
    a, xa, d, edges = _tropomi_like(rng, npix)
    return AveragingKernelOperator(
        a, xa, d, edges, model_pressure_edges=_model_edges(rng, npix), pixel=np.arange(npix)
    )


def test_jit_vmap_grad_and_linearisation(getkey):
    rng = np.random.default_rng(7)
    op = _operator(rng)
    x = jnp.asarray(1850.0 + rng.normal(0.0, 20.0, op.state_shape), dtype=jnp.float32)
    eager = op(x)
    np.testing.assert_allclose(eqx.filter_jit(op)(x).values, eager.values, rtol=1e-6)
    np.testing.assert_allclose(eager.coords["pixel"], np.arange(6))
    batch = jnp.stack([x, x + 10.0, x - 3.0])
    vm = jax.vmap(lambda s: op(s).values)(batch)
    np.testing.assert_allclose(vm, np.stack([op(s).values for s in batch]), rtol=1e-6)
    g = jax.grad(lambda s: jnp.sum(op(s).values ** 2))(x)
    assert g.shape == x.shape and np.all(np.isfinite(g))
    lin = op.linearize(x)
    res = gates.dot_product_test(lin.mv, lin.transpose().mv, x, eager.values, key=getkey())
    assert res.passed, res
    # affine: J dx is the enhancement seen by the retrieval
    dx = jnp.asarray(rng.normal(0.0, 50.0, op.state_shape), dtype=jnp.float32)
    np.testing.assert_allclose(lin.mv(dx), op(x + dx).values - eager.values, rtol=2e-3, atol=1e-2)
    # the gate can fail: a wrong adjoint (another pixel ordering) does not pass
    wrong = lambda w: lin.transpose().mv(w[::-1])  # noqa: E731
    assert not gates.dot_product_test(lin.mv, wrong, x, eager.values, key=getkey()).passed


def test_dot_product_test_in_float64(x64, getkey):
    op = _operator(np.random.default_rng(8))
    x = jnp.full(op.state_shape, 1850.0)
    lin = op.linearize(x)
    res = gates.dot_product_test(lin.mv, lin.transpose().mv, x, op(x).values, key=getkey())
    assert res.passed and res.threshold == pytest.approx(1e-10)


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda k: {**k, "prior_profile": k["prior_profile"][:, :-1]}, "`prior_profile` must"),
        (lambda k: {**k, "pressure_edges": k["pressure_edges"][:, :-1]}, "`pressure_edges` must"),
        (
            lambda k: {**k, "pressure_edges": k["pressure_edges"][:, [0, 2, 1, *range(3, 13)]]},
            "strictly monotonic",
        ),
        (lambda k: {**k, "dry_air_subcolumns": -k["dry_air_subcolumns"]}, "must be > 0"),
        (lambda k: {**k, "prior_units": "ppm"}, "`prior_units`"),
        (lambda k: {**k, "mask": np.ones(3)}, "`mask` must be a boolean"),
        (lambda k: {**k, "model_pressure_edges": np.ones((2, 5))}, "`model_pressure_edges`"),
        (lambda k: {**k, "prior_xch4": np.ones(2)}, "`prior_xch4`"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(change, match):
    a, xa, d, edges = _tropomi_like(np.random.default_rng(9), 3)
    kw = dict(averaging_kernel=a, prior_profile=xa, dry_air_subcolumns=d, pressure_edges=edges)
    with pytest.raises(ValueError, match=match):
        AveragingKernelOperator(**change(kw))


def test_state_of_the_wrong_shape_is_refused():
    op = _operator(np.random.default_rng(10))
    with pytest.raises(ValueError, match=r"`state` must have shape \(6, 30\)"):
        op(jnp.ones((6, 12)))
