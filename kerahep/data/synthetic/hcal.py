"""Synthetic twin of the HCAL DigiOccupancy runs of the ML4DQM data set.

Writes ``Run355456_Dataset.npy`` and ``Run357479_Dataset.npy`` (and, with ``n_runs > 2``,
further ``Run<number>_Dataset.npy``) in the layout of the real files: one C-ordered
float64 array ``(lumisections, 64, 72)`` per run (iEta, iPhi), integer-valued hit counts,
plain ``np.save`` format (no compression), so the reader memory-maps them as it does the
real ones.

Detector: about 80% of the cells read zero, with the same zero pattern in every run:
two active bands of iEta rows, 0-12 and 50-60 (as in the real maps), whose outer rows
have the coarser iPhi segmentation of the forward calorimeter (every second or fourth
iPhi cell), plus a few permanently dead channels. Each active cell has a fixed
expected occupancy (a row profile, a channel gain spread and a small iPhi modulation
from the beam-spot offset), larger for the coarser cells.

Runs: run ``r`` has the intensity factor ``(1 + separation) ** r`` (the real runs differ
in intensity: mean occupancy 157 against 181, a relative difference of about 0.15, the
default). Within a run the luminosity falls slowly along the fill (to about 0.98 of its
peak) and fluctuates by 2% from one lumisection to the next; the counts are Poisson.
The per-lumisection latent intensity ``(1 + separation) ** r * lumi`` is all that tells
the runs apart, so its ROC AUC (written as ``oracle_auc``; per lumisection in
``latents.npz``) is the best any classifier can reach. With a small ``separation``
(``0.02``) the intensity ranges of the runs overlap: a hard regime (oracle AUC about
0.75). The fluctuations dominate the slow decay, so every block of lumisections sees
about the same overlap and a block-split test set measures what training learnt.

Anomalies: a fraction ``anomaly_fraction`` of the lumisections of each run carries a
dead (zero) or hot (3 to 6 times the expected occupancy) group of channels, a rectangle
of 1-3 iEta by 1-4 iPhi cells anchored on an active cell, like a failing front-end or
readout box. Their truth (run, lumisection, kind, iEta and iPhi ranges, factor) is
written to ``anomalies.json``.

Not reproduced: the real maxima (1565 against 1092, the higher-mean run having the
lower maximum) point to a shape difference between the real runs that this twin leaves
out; here the runs differ in intensity only.

Example:
    >>> from kerahep.data.synthetic.hcal import make_twin
    >>> info = make_twin("data/synthetic/hcal_dqm", n_lumisections=500, seed=1)  # doctest: +SKIP
    >>> info["files"]  # doctest: +SKIP
    ['Run355456_Dataset.npy', 'Run357479_Dataset.npy']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import artifacts

SHAPE = (64, 72)
RUN_NUMBERS = (355456, 357479, 359691, 361240, 362616, 367079, 368822, 370580)
TWIN_VERSION = 2
#: the detector (zero pattern, channel gains, dead channels) is the same for every sample seed
DETECTOR_SEED = 0
ANOMALIES_FILE = "anomalies.json"
LATENTS_FILE = "latents.npz"

#: row segmentation of the active bands: (first row, last row, iPhi step, expected hits per cell)
SEGMENTS = (
    (0, 3, 4, 1135.0), (4, 8, 2, 826.0), (9, 12, 1, 518.0),     # band near iEta 0-12
    (50, 53, 1, 518.0), (54, 57, 2, 826.0), (58, 60, 4, 1135.0),  # band near iEta 50-60
)
LUMI_FLOOR = 0.97      # the luminosity decays from 1.0 towards this fraction of its peak
LUMI_JITTER = 0.02     # relative fluctuation per lumisection (pile-up, beam conditions)
GAIN_SPREAD = 0.08     # log-normal channel gain spread
DEAD_CHANNELS = 0.005  # fraction of active cells permanently dead in every run
HOT_FACTOR = (3.0, 6.0)


def file_name(run_number: int) -> str:
    return f"Run{int(run_number)}_Dataset.npy"


def run_numbers(n_runs: int) -> list[int]:
    if n_runs <= len(RUN_NUMBERS):
        return list(RUN_NUMBERS[:n_runs])
    return list(RUN_NUMBERS) + [RUN_NUMBERS[-1] + 1000 * (i + 1) for i in range(n_runs - len(RUN_NUMBERS))]


def geometry(seed: int = DETECTOR_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The active-cell mask ``(64, 72)`` and the expected occupancy per cell at peak luminosity.

    One detector for all twins: ``make_twin``'s seed draws luminosity, counts and
    anomalies, so twins with different seeds are independent samples of the same detector.
    """
    rng = np.random.default_rng([seed, 7])
    h, w = SHAPE
    mask = np.zeros(SHAPE, bool)
    base = np.zeros(SHAPE)
    phi = np.arange(w)
    for lo, hi, step, hits in SEGMENTS:
        for row in range(lo, hi + 1):
            cols = phi[(phi % step) == (step - 1) % step]
            mask[row, cols] = True
            # a gentle rise towards the middle of each segment
            centre = 0.5 * (lo + hi)
            base[row, cols] = hits * (1.0 + 0.06 * np.cos(np.pi * (row - centre) / max(hi - lo + 1, 2)))
    base *= 1.0 + 0.04 * np.cos(2 * np.pi * phi / w - 1.0)[None, :]
    base *= np.exp(rng.normal(0.0, GAIN_SPREAD, SHAPE))
    dead = mask & (rng.random(SHAPE) < DEAD_CHANNELS)
    mask &= ~dead
    base[~mask] = 0.0
    return mask, base


def luminosity(n: int, rng) -> np.ndarray:
    """Relative instantaneous luminosity per lumisection: decay along the fill plus jitter."""
    t = np.arange(n) / max(n - 1, 1)
    lumi = LUMI_FLOOR + (1.0 - LUMI_FLOOR) * np.exp(-1.6 * t)
    return lumi * (1.0 + rng.normal(0.0, LUMI_JITTER, n))


def _anomalies(n: int, fraction: float, mask: np.ndarray, rng) -> list[dict]:
    k = int(round(fraction * n))
    if k == 0:
        return []
    active = np.argwhere(mask)
    out = []
    for ls in np.sort(rng.choice(n, size=k, replace=False)):
        r0, c0 = active[rng.integers(len(active))]
        deta, dphi = int(rng.integers(1, 4)), int(rng.choice([1, 2, 4]))
        r1, c1 = min(r0 + deta, SHAPE[0]), min(c0 + dphi, SHAPE[1])
        kind = "dead" if rng.random() < 0.5 else "hot"
        factor = 0.0 if kind == "dead" else float(rng.uniform(*HOT_FACTOR))
        out.append({"lumisection": int(ls), "kind": kind, "ieta": [int(r0), int(r1)], "iphi": [int(c0), int(c1)],
                    "factor": round(factor, 4), "cells": int(mask[r0:r1, c0:c1].sum())})
    return out


def make_twin(out_dir, n_lumisections: int = 1000, n_runs: int = 2, separation: float = 0.15,
              anomaly_fraction: float = 0.05, seed: int = 0, chunk: int = 500) -> dict:
    """Write the twin into ``out_dir`` and return its description (also in ``twin.json``).

    Args:
        out_dir: folder for ``Run<number>_Dataset.npy``, ``anomalies.json``, ``latents.npz``
            and ``twin.json``.
        n_lumisections: lumisections per run (the real files have 10000).
        n_runs: number of runs (classes), at least 2.
        separation: relative intensity difference between consecutive runs (real: ~0.15).
        anomaly_fraction: fraction of lumisections with a dead or hot channel group.
        seed: luminosity, counts and anomalies are a function of the seed and the arguments
            (the detector itself is the same for every seed).
        chunk: lumisections generated and written at a time (bounds the memory used).

    Returns:
        dict with ``params``, ``files`` (names), ``paths``, ``oracle_auc`` (two runs) or ``oracle_auc_pairs``,
        per-run statistics and the number of injected anomalies.
    """
    from sklearn.metrics import roc_auc_score

    if n_runs < 2 or n_lumisections < 1 or separation < 0 or not 0 <= anomaly_fraction < 1:
        from ...errors import ConfigError

        raise ConfigError(f"synthetic hcal twin needs n_runs >= 2, n_lumisections >= 1, separation >= 0 and "
                          f"0 <= anomaly_fraction < 1; got {n_runs}, {n_lumisections}, {separation}, {anomaly_fraction}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = twin_params(n_lumisections, n_runs, separation, anomaly_fraction, seed)
    mask, base = geometry()
    files, stats, anomalies, latents = [], {}, {}, {}
    for r, number in enumerate(run_numbers(n_runs)):
        rng = np.random.default_rng([seed, r, 11])
        name = f"Run{number}"
        intensity = (1.0 + separation) ** r * luminosity(n_lumisections, rng)
        anom = _anomalies(n_lumisections, anomaly_fraction, mask, rng)
        by_ls = {a["lumisection"]: a for a in anom}
        path = out / file_name(number)
        total, peak, nonzero = 0.0, 0.0, 0
        with artifacts.atomic_path(path, suffix=".npy") as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n_lumisections, *SHAPE))
            for s in range(0, n_lumisections, chunk):
                e = min(s + chunk, n_lumisections)
                mu = base[None] * intensity[s:e, None, None]
                for ls in range(s, e):
                    a = by_ls.get(ls)
                    if a:
                        (r0, r1), (c0, c1) = a["ieta"], a["iphi"]
                        mu[ls - s, r0:r1, c0:c1] *= a["factor"]
                counts = rng.poisson(mu).astype(np.float64)
                arr[s:e] = counts
                total += counts.sum()
                peak = max(peak, float(counts.max()))
                nonzero += int((counts > 0).sum())
            arr.flush()
            del arr
        files.append(path.name)
        size = n_lumisections * SHAPE[0] * SHAPE[1]
        stats[name] = {"mean": total / size, "max": peak, "zero_fraction": 1.0 - nonzero / size}
        anomalies[name] = anom
        latents[name] = intensity
    labels = np.concatenate([np.full(n_lumisections, r) for r in range(n_runs)])
    lat = np.concatenate([latents[k] for k in latents])
    pairs = [float(roc_auc_score(labels[(labels == r) | (labels == r + 1)] == r + 1,
                                 lat[(labels == r) | (labels == r + 1)])) for r in range(n_runs - 1)]
    with artifacts.atomic_path(out / LATENTS_FILE, suffix=".npz") as tmp:
        np.savez(tmp, **latents)
    artifacts.write_json(out / ANOMALIES_FILE, {"description": "injected dead/hot channel groups per run; ieta and iphi "
                                                        "are [first, last + 1) array indices", "runs": anomalies})
    info = {
        "twin": "hcal_dqm",
        "params": params,
        "files": files,
        "runs": list(latents),
        "oracle_auc": pairs[0] if n_runs == 2 else None,
        "oracle_auc_pairs": pairs,
        "oracle": "ROC AUC of the latent per-lumisection intensity (1 + separation)**run * luminosity",
        "active_cells": int(mask.sum()),
        "stats": stats,
        "n_anomalies": {k: len(v) for k, v in anomalies.items()},
        "anomalies_file": ANOMALIES_FILE,
        "latents_file": LATENTS_FILE,
    }
    artifacts.write_json(out / "twin.json", info)
    return {**info, "paths": [str(out / f) for f in files]}


def twin_params(n_lumisections, n_runs, separation, anomaly_fraction, seed) -> dict:
    return {"n_lumisections": int(n_lumisections), "n_runs": int(n_runs), "separation": float(separation),
            "anomaly_fraction": float(anomaly_fraction), "seed": int(seed), "shape": list(SHAPE),
            "version": TWIN_VERSION}


def ensure_twin(out_dir, n_lumisections: int = 1000, n_runs: int = 2, separation: float = 0.15,
                anomaly_fraction: float = 0.05, seed: int = 0) -> dict:
    """The twin in ``out_dir``: reused when ``twin.json`` has the same parameters and every
    file is present, written (again) otherwise."""
    out = Path(out_dir)
    params = twin_params(n_lumisections, n_runs, separation, anomaly_fraction, seed)
    meta = out / "twin.json"
    if meta.exists():
        try:
            info = artifacts.read_json(meta)
        except ValueError:
            info = {}
        files = info.get("files") or []
        if info.get("params") == params and files and all((out / f).exists() for f in files) \
                and (out / ANOMALIES_FILE).exists() and (out / LATENTS_FILE).exists():
            return {**info, "paths": [str(out / f) for f in files]}
    return make_twin(out, n_lumisections, n_runs, separation, anomaly_fraction, seed)


def load_anomalies(out_dir) -> dict:
    """``{run name: {lumisection: record}}`` from ``anomalies.json`` in ``out_dir``."""
    d = artifacts.read_json(Path(out_dir) / ANOMALIES_FILE)
    return {run: {int(a["lumisection"]): a for a in recs} for run, recs in d["runs"].items()}


def load_latents(out_dir) -> dict:
    """``{run name: per-lumisection latent intensity}`` from ``latents.npz`` in ``out_dir``."""
    with np.load(Path(out_dir) / LATENTS_FILE) as f:
        return {k: f[k] for k in f.files}
