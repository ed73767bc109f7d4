"""Plausibility rules: impossible radiance and enhancements are rejected, by name.

Each rule has an input it must accept and one it must reject. The cubes are small and
synthetic (a brightness term plus an absorption term), so no RTM is needed.
"""

import numpy as np
import pytest

import plumax_rtm as pr

M = 6  # bands


def _cube(ny=10, nx=9, m=M, seed=0):
    """Positive radiance ``albedo * mu0 * (1 + k * dx) + noise`` and its target ``k``."""
    rng = np.random.default_rng(seed)
    mu0 = np.linspace(8.0, 5.0, m)
    k = -(np.linspace(0.0, 2e-4, m) ** 1.5) - 1e-6  # unit absorption, varies by band
    albedo = 0.25 + 0.05 * rng.standard_normal((ny, nx, 1))
    dx = np.abs(rng.standard_normal((ny, nx, 1))) * 50.0
    sigma = mu0 / 300.0
    x = albedo * mu0 * (1.0 + k * dx) + sigma * rng.standard_normal((ny, nx, m))
    return x.astype(np.float32), k.astype(np.float32), np.broadcast_to(sigma, x.shape)


def test_plausible_cube_passes_and_valid_pixels_are_returned():
    x, k, sigma = _cube()
    x[0, 0, 2] = np.nan
    valid = pr.check_radiance(x, sigma=sigma)
    assert valid.shape == (10, 9) and valid.sum() == 89 and not valid[0, 0]
    res = pr.matched_filter(x, k)
    assert res.n_masked == 1 and np.isfinite(res.enhancement[5, 5])


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda x: -x, "negative value"),
        (lambda x: np.zeros_like(x), "mean over the valid pixels is <= 0"),
        (lambda x: np.broadcast_to(x[:1, :1], x.shape).copy(), "does not vary"),
        (lambda x: x[..., :1], "at least 2"),
    ],
    ids=["negated", "all-zero", "uniform", "one-band"],
)
def test_impossible_radiance_is_rejected_by_name(edit, needle):
    x, k, _ = _cube()
    bad = edit(x)
    with pytest.raises(ValueError, match=needle) as info:
        pr.check_radiance(bad)
    assert "`radiance`" in str(info.value)
    if bad.shape[-1] == M:  # the matched filter applies the same rules
        with pytest.raises(ValueError, match=needle):
            pr.matched_filter(bad, k)


def test_negative_radiance_within_noise_needs_sigma():
    """A dark pixel dipping 3 sigma below zero is noise; 11 sigma is impossible."""
    x, _, sigma = _cube()
    x = x.astype(np.float64)
    x[3, 4, 1] = -3.0 * sigma[3, 4, 1]
    pr.check_radiance(x, sigma=sigma)
    with pytest.raises(ValueError, match="1 impossible negative value"):
        pr.check_radiance(x)  # without a noise estimate every negative value is impossible
    x[3, 4, 1] = -11.0 * sigma[3, 4, 1]
    with pytest.raises(ValueError, match="10 sigma"):
        pr.check_radiance(x, sigma=sigma, wavelengths=np.arange(M) * 7.0 + 2100.0)


def test_one_constant_band_is_named():
    x, _, _ = _cube()
    x[..., 3] = 4.0
    with pytest.raises(ValueError, match=r"1 of 6 bands \(e.g. band 3 \(2121.0 nm\)\)"):
        pr.check_radiance(x, wavelengths=np.arange(M) * 7.0 + 2100.0)


def test_flat_target_is_rejected():
    x, k, _ = _cube()
    pr.check_target(k)
    with pytest.raises(ValueError, match="same in all 6 bands"):
        pr.matched_filter(x, np.full(M, -1e-4, np.float32))


def test_background_pixel_rule_is_the_rank_of_the_sample_covariance():
    """n pixels give a sample covariance of rank min(n - 1, m): it is invertible from
    n = m + 1 on, which is what the classic filter requires."""
    rng = np.random.default_rng(3)
    for n in (M - 1, M, M + 1, M + 4):
        xs = rng.standard_normal((n, M))
        rank = np.linalg.matrix_rank(np.cov(xs, rowvar=False))
        assert rank == min(n - 1, M)
        invertible = rank == M
        assert invertible == (n >= pr.min_background_pixels(M, "classic"))
    assert pr.min_background_pixels(M, "shrinkage") == 2
    assert pr.min_background_pixels(M, "lowrank", rank=3) == 4
    assert pr.min_background_pixels(M, "lowrank", rank=10) == M + 1


def test_too_few_background_pixels_says_how_many_remain():
    x, k, _ = _cube(ny=3, nx=3)  # 9 pixels, 6 bands: enough (>= 7)
    pr.matched_filter(x, k)
    ex = np.zeros((3, 3), bool)
    ex[0, :] = True
    with pytest.raises(ValueError, match=r"only 6 of 9 pixels remain valid .*3 excluded as plume"):
        pr.matched_filter(x, k, exclude=ex)
    x[2, 2, 0] = np.nan
    x[2, 1, 0] = np.nan
    x[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"3 non-finite\); .* at least 7"):
        pr.matched_filter(x, k)
    with pytest.raises(ValueError, match="only 6"):
        pr.sparse_matched_filter(x, k, n_iter=1)


# -- enhancements --------------------------------------------------------------------


def test_enhancement_bounds_are_the_background_and_pure_methane_columns():
    """Independent arithmetic: the CH4 column of an atmosphere at 1085 hPa with 2 ppm,
    N = X p_s / (M_air g) mol m-2, and the ppm m of STP air."""
    n_bg = 2.0e-6 * 108500.0 / (0.0289644 * 9.80665)  # mol m-2
    lo, hi = pr.ENHANCEMENT_BOUNDS["column_mol_m2"]
    assert lo == pytest.approx(-n_bg, rel=1e-9)
    lo_ppm_m, hi_ppm_m = pr.ENHANCEMENT_BOUNDS["column_ppm_m"]
    assert lo_ppm_m == pytest.approx(-n_bg / pr.MOL_M2_PER_PPM_M, rel=1e-9)
    assert -17200 < lo_ppm_m < -17000
    assert hi_ppm_m == pytest.approx(-lo_ppm_m / 2.0 * 1e6, rel=1e-9)
    assert pr.ENHANCEMENT_BOUNDS["column_kg_m2"][0] == pytest.approx(-n_bg * 16.04e-3, rel=1e-9)


def test_impossible_enhancements_are_rejected_and_noise_is_not():
    v = np.zeros((4, 5))
    v[1, 2] = -1e30
    with pytest.raises(
        ValueError, match=r"`values` holds 1 impossible column_ppm_m .*index \(1, 2\)"
    ):
        pr.check_enhancement(v, kind="column_ppm_m", sigma=15.0)
    v[1, 2] = 1e30
    with pytest.raises(ValueError, match="pure methane"):
        pr.check_enhancement(v, kind="column_ppm_m", sigma=15.0, name="enh")
    # noisy negatives are fine; beyond the background column by more than 10 sigma is not
    v[1, 2] = -20000.0
    pr.check_enhancement(v, kind="column_ppm_m", sigma=500.0)
    with pytest.raises(ValueError, match="below -1.712e"):
        pr.check_enhancement(v, kind="column_ppm_m", sigma=100.0)
    v[1, 2] = -3 * 15.0
    pr.check_enhancement(v, kind="column_ppm_m", sigma=15.0)
    # the same rule in mol m-2
    with pytest.raises(ValueError, match="column_mol_m2"):
        pr.check_enhancement(np.array([-1.0]), kind="column_mol_m2", sigma=0.01)
    # non-finite values only where masked
    v[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite .*index \(0, 0\)"):
        pr.check_enhancement(v, kind="column_ppm_m")
    mask = np.ones(v.shape, bool)
    mask[0, 0] = False
    pr.check_enhancement(v, kind="column_ppm_m", mask=mask)
    # kinds without physical bounds: finiteness only
    pr.check_enhancement(np.array([-1e30]), kind="generic")
