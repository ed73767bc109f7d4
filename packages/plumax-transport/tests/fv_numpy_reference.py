"""An independent plain-NumPy finite-volume advection-diffusion step (test reference).

Written apart from the JAX engine (``plumax_transport._fv_*``), from the same numerics:
donor-cell ("upwind") or MUSCL van Leer ("limited") face states taken through neighbour
*index maps* (periodic: modulo; otherwise clamped, i.e. zero-gradient ghosts) instead of
padded arrays; the positivity-preserving blend of the limited flux with the donor-cell
flux; SSP-RK3 (Shu & Osher 1988); explicit horizontal diffusion; backward-Euler vertical
diffusion solved column by column with ``scipy.linalg.solve_banded``; Lie splitting.

Arrays are ``(nz, ny, nx)``; winds on faces as in ``FaceWinds``. Boundary kinds are a
dict ``{"x": (lo, hi), "y": (lo, hi), "z": (lo, hi)}`` of "periodic"/"closed"/"open".
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

MARGIN_EPS = 64  # the positivity margin, in units of the float64 epsilon


def _idx(n: int, periodic: bool, j: np.ndarray) -> np.ndarray:
    return np.mod(j, n) if periodic else np.clip(j, 0, n - 1)


def _van_leer(a, b):
    ab = a * b
    out = np.zeros_like(a)
    m = ab > 0
    out[m] = 2.0 * ab[m] / (a[m] + b[m])
    return out


def _flux_1d(q, vel, kinds, background, scheme, dz=None):
    """Advective flux along the LAST axis of q (n cells, n + 1 faces)."""
    n = q.shape[-1]
    lo, hi = kinds
    per = lo == "periodic"
    vel = vel.copy()
    if per:
        vel[..., n] = vel[..., 0]
    cells = np.arange(n)
    if scheme == "upwind":
        s = np.zeros_like(q)
    else:
        qm = q[..., _idx(n, per, cells - 1)]
        qp = q[..., _idx(n, per, cells + 1)]
        a, b = q - qm, qp - q
        if dz is not None:
            dzm = dz[_idx(n, per, cells - 1)]
            dzp = dz[_idx(n, per, cells + 1)]
            a = a * (2 * dz / (dzm + dz))
            b = b * (2 * dz / (dz + dzp))
        s = _van_leer(a, b)
    faces = np.arange(n + 1)
    il, ir = _idx(n, per, faces - 1), _idx(n, per, faces)
    q_l = q[..., il] + 0.5 * s[..., il]
    q_r = q[..., ir] - 0.5 * s[..., ir]
    if not per:  # ghost cells outside carry the edge value (zero slope)
        q_l[..., 0] = q[..., 0]
        q_r[..., n] = q[..., n - 1]
    f = np.maximum(vel, 0) * q_l + np.minimum(vel, 0) * q_r
    if per:
        f[..., n] = f[..., 0]
        return f
    for face, kind, sign in ((0, lo, 1.0), (n, hi, -1.0)):
        if kind == "closed":
            f[..., face] = 0.0
        else:
            into = sign * vel[..., face] > 0
            f[..., face] = np.where(into, vel[..., face] * background, f[..., face])
    return f


def _diff_1d(q, k, h, per):
    n = q.shape[-1]
    faces = np.arange(n + 1)
    il, ir = _idx(n, per, faces - 1), _idx(n, per, faces)
    f = -0.5 * (k[..., il] + k[..., ir]) * (q[..., ir] - q[..., il]) / h
    if per:
        f[..., n] = f[..., 0]
    else:
        f[..., 0] = 0.0
        f[..., n] = 0.0
    return f


class Reference:
    def __init__(self, dx, dy, z_edges, u, v, w, kh, kz, source, kinds, background, scheme):
        self.dx, self.dy = dx, dy
        self.dz = np.diff(np.asarray(z_edges, float))
        self.u, self.v, self.w = u, v, w
        self.kinds, self.bg, self.scheme = kinds, background, scheme
        nz, ny, nx = u.shape[0], v.shape[1] - 1, u.shape[2] - 1
        self.shape = (nz, ny, nx)
        self.kh = np.broadcast_to(kh, self.shape).astype(float)
        self.kz = np.broadcast_to(kz, (nz + 1, ny, nx)).astype(float)
        self.source = np.broadcast_to(source, self.shape).astype(float)

    def fluxes(self, q, scheme):
        k = self.kinds
        fx = _flux_1d(q, self.u, k["x"], self.bg, scheme)
        fx += _diff_1d(q, self.kh, self.dx, k["x"][0] == "periodic")
        qy = q.transpose(0, 2, 1)
        fy = _flux_1d(qy, self.v.transpose(0, 2, 1), k["y"], self.bg, scheme)
        fy += _diff_1d(qy, self.kh.transpose(0, 2, 1), self.dy, k["y"][0] == "periodic")
        fy = fy.transpose(0, 2, 1)
        qz = q.transpose(1, 2, 0)
        fz = _flux_1d(qz, self.w.transpose(1, 2, 0), k["z"], self.bg, scheme, dz=self.dz)
        return fx, fy, fz.transpose(2, 0, 1)

    def limited_fluxes(self, q, dt):
        lo = self.fluxes(q, "upwind")
        hi = self.fluxes(q, "limited")
        dz3 = self.dz[:, None, None]
        widths = (self.dx, self.dy, dz3)
        a = np.zeros(self.shape)
        p = np.zeros(self.shape)
        slicers = (
            (lambda f: f[..., :-1], lambda f: f[..., 1:]),
            (lambda f: f[:, :-1, :], lambda f: f[:, 1:, :]),
            (lambda f: f[:-1], lambda f: f[1:]),
        )
        for d in range(3):
            first, last = slicers[d]
            for sgn, take in ((-1.0, first), (1.0, last)):
                ol = sgn * take(lo[d]) * dt / widths[d]
                oh = sgn * take(hi[d]) * dt / widths[d]
                a += np.maximum(ol, 0)
                p += np.maximum(oh - ol, 0)
        delta = MARGIN_EPS * np.finfo(float).eps
        theta = np.ones(self.shape)
        m = p > 0
        theta[m] = np.clip(((1 - delta) * q[m] - a[m]) / p[m], 0, 1)
        out = []
        for d, axis, key in ((0, 2, "x"), (1, 1, "y"), (2, 0, "z")):
            n = self.shape[axis]
            per = self.kinds[key][0] == "periodic"
            faces = np.arange(n + 1)
            tl = np.take(theta, _idx(n, per, faces - 1), axis=axis)
            tr = np.take(theta, _idx(n, per, faces), axis=axis)
            out.append(lo[d] + np.minimum(tl, tr) * (hi[d] - lo[d]))
        return out

    def euler(self, q, dt):
        if self.scheme == "upwind":
            fx, fy, fz = self.fluxes(q, "upwind")
        else:
            fx, fy, fz = self.limited_fluxes(q, dt)
        div = np.diff(fx, axis=2) / self.dx + np.diff(fy, axis=1) / self.dy
        div += np.diff(fz, axis=0) / self.dz[:, None, None]
        out = 0.0
        areas = {"x": self.dy * self.dz[:, None], "y": self.dx * self.dz[:, None]}
        kx, ky, kz = self.kinds["x"], self.kinds["y"], self.kinds["z"]
        if kx[0] == "open":
            out -= np.sum(fx[:, :, 0] * areas["x"])
        if kx[1] == "open":
            out += np.sum(fx[:, :, -1] * areas["x"])
        if ky[0] == "open":
            out -= np.sum(fy[:, 0, :] * areas["y"])
        if ky[1] == "open":
            out += np.sum(fy[:, -1, :] * areas["y"])
        if kz[0] == "open":
            out -= np.sum(fz[0]) * self.dx * self.dy
        if kz[1] == "open":
            out += np.sum(fz[-1]) * self.dx * self.dy
        return q + dt * (self.source - div), dt * out

    def vertical(self, q, dt):
        nz, ny, nx = self.shape
        dz = self.dz
        dzc = 0.5 * (dz[1:] + dz[:-1])
        out = np.empty_like(q)
        for j in range(ny):
            for i in range(nx):
                d = dt * self.kz[1:-1, j, i] / dzc
                ab = np.zeros((3, nz))
                ab[0, 1:] = -d
                ab[2, :-1] = -d
                ab[1] = dz.copy()
                ab[1, :-1] += d
                ab[1, 1:] += d
                out[:, j, i] = solve_banded((1, 1), ab, q[:, j, i] * dz)
        return out

    def advance(self, q, dt, n_sub):
        h = dt / n_sub
        total = 0.0
        for _ in range(n_sub):
            if self.scheme == "upwind":
                q, o = self.euler(q, h)
            else:
                q1, o0 = self.euler(q, h)
                e1, o1 = self.euler(q1, h)
                q2 = 0.75 * q + 0.25 * e1
                e2, o2 = self.euler(q2, h)
                q = q / 3.0 + (2.0 / 3.0) * e2
                o = o0 / 6.0 + o1 / 6.0 + (2.0 / 3.0) * o2
            q = self.vertical(q, h)
            total += o
        return q, total
