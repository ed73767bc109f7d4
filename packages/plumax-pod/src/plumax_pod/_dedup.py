"""Great-circle distances and the merging of repeated detections of one event.

:func:`deduplicate` visits the detections in time order; each joins the most recent
cluster whose *first* detection (its head) lies within ``time_s`` before it and within
``distance_m`` (haversine) of it, or starts a new cluster. Candidate heads are found
through a uniform grid on the unit sphere's 3-D embedding with cells one chord
``2R sin(d / 2R)`` wide, so only the 27 neighbouring cells are searched: the cost is
``O(n · heads nearby in space and time)`` instead of ``O(n²)``.
"""

import dataclasses
import math
from collections import defaultdict

import numpy as np

from ._catalog import PlumeCatalog

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius (Moritz 2000)


def haversine(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (m) on a sphere of radius :data:`EARTH_RADIUS_M`
    (degrees in; the haversine formula, Sinnott 1984)."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dlat, dlon = p2 - p1, np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _haversine_scalar(p1, l1, c1, p2, l2, c2) -> float:
    """:func:`haversine` for one pair, in radians with precomputed cosines."""
    a = math.sin((p2 - p1) / 2) ** 2 + c1 * c2 * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def _clusters(t, lat, lon, distance_m: float, time_s: float) -> np.ndarray:
    """Cluster index of each detection (input order); heads numbered in time order."""
    n = t.size
    order = np.argsort(t, kind="stable")
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    cphi = np.cos(phi)
    xyz = np.stack([cphi * np.cos(lam), cphi * np.sin(lam), np.sin(phi)], axis=1)
    chord = 2.0 * math.sin(min(distance_m / (2 * EARTH_RADIUS_M), math.pi / 2))
    cell = max(chord, 1e-9) * (1 + 1e-9)
    keys = np.floor(xyz / cell).astype(np.int64)
    grid: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    head_row: list[int] = []
    cluster = np.empty(n, np.int64)
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    tl, pl, ll, cl = t.tolist(), phi.tolist(), lam.tolist(), cphi.tolist()
    kl = keys.tolist()
    for i in order.tolist():
        ti, kx, ky, kz = tl[i], *kl[i]
        best = -1
        for dx, dy, dz in offsets:
            heads = grid.get((kx + dx, ky + dy, kz + dz))
            if not heads:
                continue
            for c in reversed(heads):
                if c <= best:
                    break
                h = head_row[c]
                if ti - tl[h] > time_s:
                    break
                if _haversine_scalar(pl[h], ll[h], cl[h], pl[i], ll[i], cl[i]) <= distance_m:
                    best = c
                    break
        if best < 0:
            best = len(head_row)
            head_row.append(i)
            grid[(kx, ky, kz)].append(best)
        cluster[i] = best
    return cluster


def deduplicate(
    catalog: PlumeCatalog, *, distance_m: float, time_s: float, keep: str = "first"
) -> tuple[PlumeCatalog, np.ndarray]:
    """Merge detections of the same event: within ``distance_m`` (m, haversine) and
    ``time_s`` (s) after a cluster's first detection (see the module docstring).

    Args:
        keep: ``"first"`` (earliest), ``"max"`` (largest q; the first such row on ties)
            or ``"mean"`` (the first row with the cluster's mean q and the mean of its
            q_sigma, NaN if a member has none).

    Returns:
        ``(deduplicated catalog, cluster index of every input row)``; clusters are
        numbered, and the output ordered, by the time of their first detection.
    """
    if not (math.isfinite(distance_m) and distance_m >= 0):
        raise ValueError(f"`distance_m` must be a finite distance >= 0 m, got {distance_m}")
    if not (math.isfinite(time_s) and time_s >= 0):
        raise ValueError(f"`time_s` must be a finite duration >= 0 s, got {time_s}")
    if keep not in ("first", "max", "mean"):
        raise ValueError(f"`keep` must be 'first', 'max' or 'mean', got {keep!r}")
    n = len(catalog)
    cluster = _clusters(catalog.time, catalog.lat, catalog.lon, float(distance_m), float(time_s))
    k = int(cluster.max()) + 1 if n else 0
    rows = np.arange(n)
    t_order = np.argsort(catalog.time, kind="stable")
    head = np.empty(k, np.int64)
    head[cluster[t_order[::-1]]] = t_order[::-1]  # the earliest member is written last
    q, qs = catalog.q.copy(), catalog.q_sigma.copy()
    if keep == "max":
        o = np.lexsort((rows, -catalog.q, cluster))
        first = np.concatenate([[True], cluster[o][1:] != cluster[o][:-1]]) if n else o
        pick = o[first]
    else:
        pick = head
        if keep == "mean":
            size = np.bincount(cluster, minlength=k)
            q[head] = np.bincount(cluster, weights=catalog.q, minlength=k) / size
            qs[head] = np.bincount(cluster, weights=catalog.q_sigma, minlength=k) / size
    out = dataclasses.replace(catalog, q=q, q_sigma=qs).take(np.asarray(pick, np.int64))
    return out, cluster
