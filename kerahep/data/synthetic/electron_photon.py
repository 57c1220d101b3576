"""Synthetic twin of the ML4SCI electron/photon calorimeter crops.

Writes ``SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5`` and
``SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5`` in the layout of the real files: ``X``
``(N, 32, 32, 2)`` float32 (channel 0 hit energy, channel 1 hit time; axis 1 is eta,
axis 2 is phi), ``y`` ``(N,)`` float32 (all 0.0 for photons, all 1.0 for electrons),
both gzip-compressed and chunked along the sample axis.

The showers follow what is known of the real files (README, electron_photon: no negative
energies, about 95% of the pixels zero, energy sum about 1.24 for both classes, photons
peakier, electrons wider along one axis). Each crop is a compact electromagnetic
shower centred on pixel (16, 16) (a narrow core plus a wider halo, integrated over the
pixels), with energy sum about 1.24. One latent variable ``u`` >= 0 per crop drives
the class difference: a fraction ``b(u)`` of the energy is spread along phi over
``L(u)`` pixels on one side of the core (bremsstrahlung for electrons, an asymmetric
conversion for photons). Electrons draw ``u`` from a Gamma distribution; photons from
a mixture of a narrow one (unconverted) and the electron one (converted). Everything
else (total energy, position, fluctuations, noise, time) is drawn the same way for both
classes, so the likelihood ratio of ``u`` is the Bayes-optimal classifier and its ROC
AUC, the *oracle AUC*, is recorded in ``twin.json``. The per-crop latents are written
to ``latents.npz`` so that the oracle can be evaluated on exactly a model's test crops.

Pixel fluctuations are Poisson-like (variance proportional to the energy) plus
electronic noise, and hits below a zero-suppression threshold read zero, which leaves
about 95% of the pixels empty. The time channel is non-zero on hit pixels only, with a
resolution that worsens at low energy, clipped to [-2.5, 2.3]; it carries the hit
pattern but nothing else about the class.

Example:
    >>> from kerahep.data.synthetic.electron_photon import generate
    >>> info = generate("data/synthetic/electron_photon", n_per_class=2000, seed=1)
    >>> round(info["oracle_auc"], 2)  # doctest: +SKIP
    0.82
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ... import artifacts
from ...errors import DataError

PHOTON_FILE = "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5"
ELECTRON_FILE = "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"
FILES = (PHOTON_FILE, ELECTRON_FILE)
SIZE = 32
CENTRE = 16
TWIN_VERSION = 3
#: rows per HDF5 chunk of the real files (249000 = 25 x 9960, written in dask chunks of 9960)
REAL_CHUNK_ROWS = 9960

#: shower and detector parameters (recorded in twin.json; a change regenerates the twin)
PARAMS = {
    "energy_mean": 1.28,        # deposited energy before zero suppression (sum after it: about 1.22)
    "energy_sigma": 0.12,
    "core_sigma": 0.25,         # pixels; narrow core of the EM shower
    "halo_sigma": 2.5,          # pixels; wider halo
    "halo_fraction": 0.16,
    "eta_squeeze": 0.9,         # core and halo slightly narrower in eta than in phi
    "brem_max_fraction": 0.25,  # b(u) = brem_max_fraction * u / (1 + u), taken from the core
    "brem_length": 5.2,         # L(u) = brem_length * u pixels along phi
    "brem_sigma": 0.6,          # spread of the radiated energy around its line
    "brem_points": 8,
    "stochastic": 1.0e-4,       # Poisson-like variance per unit energy
    "noise_sigma": 3.0e-4,      # electronic noise per pixel
    "threshold": 1.8e-3,        # zero suppression
    "u_shape_electron": 3.0,    # Gamma(k, theta) of u for electrons (and converted photons)
    "u_scale_electron": 0.3,
    "u_scale_photon": 0.06,     # exponential u of unconverted photons
    "conversion_fraction": 0.35,
    "time_sigma_const": 0.25,   # time resolution: sqrt((a / (E/0.01))^2 + c^2)
    "time_sigma_stoch": 0.8,
    "time_range": (-2.5, 2.3),
}


def _pixel_integrals(mu, sigma):
    """Fraction of a 1-D Gaussian (centres ``mu``, widths ``sigma``, shape (n, k)) in each pixel."""
    from scipy.special import ndtr

    edges = np.arange(SIZE + 1, dtype=np.float64) - 0.5  # pixel i covers [i - 0.5, i + 0.5]
    z = (edges[None, None, :] - mu[..., None]) / sigma[..., None]
    cdf = ndtr(z)
    return np.diff(cdf, axis=-1)  # (n, k, SIZE)


def sample_latent(rng, n: int, label: int, p=PARAMS) -> np.ndarray:
    """Draw the class-dependent latent ``u`` for ``n`` crops of class ``label``."""
    u_e = rng.gamma(p["u_shape_electron"], p["u_scale_electron"], n)
    if label == 1:
        return u_e
    converted = rng.random(n) < p["conversion_fraction"]
    return np.where(converted, u_e, rng.exponential(p["u_scale_photon"], n))


def latent_likelihood_ratio(u, p=PARAMS) -> np.ndarray:
    """p(u | electron) / p(u | photon): the Bayes-optimal score given the latent."""
    from scipy import stats

    u = np.asarray(u, dtype=np.float64)
    g = stats.gamma.pdf(u, p["u_shape_electron"], scale=p["u_scale_electron"])
    e = stats.expon.pdf(u, scale=p["u_scale_photon"])
    c = p["conversion_fraction"]
    return g / np.maximum((1 - c) * e + c * g, 1e-300)


def make_crops(rng, u: np.ndarray, p=PARAMS) -> np.ndarray:
    """Render crops ``(n, 32, 32, 2)`` float32 for latents ``u`` (the class enters only through ``u``)."""
    n = len(u)
    energy = np.clip(rng.normal(p["energy_mean"], p["energy_sigma"], n), 0.6, 2.0)
    eta0 = CENTRE + rng.uniform(-0.45, 0.45, n)
    phi0 = CENTRE + rng.uniform(-0.45, 0.45, n)
    b = p["brem_max_fraction"] * u / (1.0 + u)
    length = p["brem_length"] * u
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    k = p["brem_points"]
    # components: core, halo, k brem points along phi (all separable Gaussians)
    frac = np.empty((n, 2 + k))
    frac[:, 0] = 1 - p["halo_fraction"] - b  # radiated energy leaves the core, not the halo
    frac[:, 1] = p["halo_fraction"]
    frac[:, 2:] = (b / k)[:, None]
    pos = (np.arange(k) + 0.5) / k
    mu_phi = np.concatenate([phi0[:, None], phi0[:, None], phi0[:, None] + side[:, None] * length[:, None] * pos], 1)
    mu_eta = np.repeat(eta0[:, None], 2 + k, axis=1)
    s_phi = np.concatenate([np.full((n, 1), p["core_sigma"]), np.full((n, 1), p["halo_sigma"]),
                            np.full((n, k), p["brem_sigma"])], 1)
    s_eta = s_phi * p["eta_squeeze"]
    s_eta[:, 2:] = p["brem_sigma"]  # radiated photons: showers of their own
    pe = _pixel_integrals(mu_eta, s_eta)  # (n, comps, 32)
    pp = _pixel_integrals(mu_phi, s_phi)
    img = np.einsum("nc,nci,ncj->nij", frac * energy[:, None], pe, pp)
    noisy = img + np.sqrt(p["stochastic"] * img) * rng.standard_normal(img.shape) \
        + p["noise_sigma"] * rng.standard_normal(img.shape)
    hit = noisy > p["threshold"]
    e_out = np.where(hit, noisy, 0.0)
    sig_t = np.sqrt((p["time_sigma_stoch"] / np.maximum(e_out / 0.01, 1e-3)) ** 2 + p["time_sigma_const"] ** 2)
    t0 = rng.normal(0.0, 0.1, (n, 1, 1))
    t = np.clip(t0 + sig_t * rng.standard_normal(img.shape), *p["time_range"])
    t_out = np.where(hit, t, 0.0)
    return np.stack([e_out, t_out], axis=-1).astype(np.float32)


def shower_stats(X: np.ndarray) -> dict:
    """Summary statistics of crops (the quantities the facts about the real files are given in)."""
    e = np.asarray(X[..., 0], dtype=np.float64)
    tot = e.sum(axis=(1, 2))
    idx = np.arange(SIZE, dtype=np.float64)
    w_eta = e.sum(axis=2) / np.maximum(tot[:, None], 1e-12)
    w_phi = e.sum(axis=1) / np.maximum(tot[:, None], 1e-12)
    m_eta = (w_eta * idx).sum(1)
    m_phi = (w_phi * idx).sum(1)
    width_eta = np.sqrt(np.maximum((w_eta * (idx[None] - m_eta[:, None]) ** 2).sum(1), 0))
    width_phi = np.sqrt(np.maximum((w_phi * (idx[None] - m_phi[:, None]) ** 2).sum(1), 0))
    flat = e.reshape(len(e), -1).argmax(1)
    t = np.asarray(X[..., 1])
    return {
        "n": int(len(e)),
        "energy_sum": float(tot.mean()),
        "max_pixel": float(e.max(axis=(1, 2)).mean()),
        "energy_max": float(e.max()) if e.size else 0.0,
        "hit_pixels": float((e > 0).sum(axis=(1, 2)).mean()),
        "zero_fraction": float((e == 0).mean()),
        "width_phi": float(width_phi.mean()),
        "width_eta": float(width_eta.mean()),
        "peak_at_centre": float(((flat // SIZE == CENTRE) & (flat % SIZE == CENTRE)).mean()),
        "time_min": float(t.min()) if t.size else 0.0,
        "time_max": float(t.max()) if t.size else 0.0,
    }


def twin_params(n_per_class: int, seed: int, chunk_rows: int | None) -> dict:
    return {"version": TWIN_VERSION, "n_per_class": int(n_per_class), "seed": int(seed),
            "chunk_rows": int(chunk_rows_for(n_per_class, chunk_rows)), "physics": PARAMS}


def chunk_rows_for(n: int, chunk_rows: int | None = None) -> int:
    """HDF5 chunk rows of a twin with ``n`` crops per file (real layout: 9960 rows per chunk).

    Small twins keep the real files' number of chunks (25) so that chunked reading is
    exercised; large ones use the real chunk size.
    """
    if chunk_rows:
        return max(1, min(int(chunk_rows), n))
    return max(1, min(REAL_CHUNK_ROWS, -(-n // 25)))


def _write_file(path: Path, label: int, n: int, seed: int, chunk_rows: int, progress=None):
    import h5py

    lat = np.empty(n, dtype=np.float32)
    stats_x = []
    with artifacts.atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            X = f.create_dataset("X", shape=(n, SIZE, SIZE, 2), dtype="float32",
                                 chunks=(chunk_rows, SIZE, SIZE, 2), compression="gzip", compression_opts=4,
                                 shuffle=False)
            y = f.create_dataset("y", shape=(n,), dtype="float32", chunks=(chunk_rows,),
                                 compression="gzip", compression_opts=4)
            for c, start in enumerate(range(0, n, chunk_rows)):
                stop = min(n, start + chunk_rows)
                rng = np.random.default_rng([int(seed), int(label), c])
                u = sample_latent(rng, stop - start, label)
                crops = make_crops(rng, u)
                X[start:stop] = crops
                y[start:stop] = float(label)
                lat[start:stop] = u
                if len(stats_x) * chunk_rows < 5000:
                    stats_x.append(crops)
                if progress is not None:
                    progress(stop - start)
    return lat, shower_stats(np.concatenate(stats_x)[:5000])


def twin_is_current(folder, n_per_class: int, seed: int = 0, chunk_rows: int | None = None) -> bool:
    """True when ``folder`` holds a complete twin generated with these parameters."""
    folder = Path(folder)
    meta = folder / "twin.json"
    if not meta.exists() or not all((folder / f).exists() for f in FILES) or not (folder / "latents.npz").exists():
        return False
    try:
        recorded = artifacts.read_json(meta).get("parameters")
    except ValueError:
        return False
    return json.loads(json.dumps(recorded)) == json.loads(json.dumps(twin_params(n_per_class, seed, chunk_rows)))


def generate(folder, n_per_class: int = 3000, seed: int = 0, chunk_rows: int | None = None,
             force: bool = False, show_progress: bool = False) -> dict:
    """Write the twin into ``folder`` (unless an identical one is there) and return twin.json.

    Args:
        folder: output folder (created).
        n_per_class: crops per file.
        seed: the twin is a function of the seed, the size and the chunking only.
        chunk_rows: HDF5 chunk rows (default :func:`chunk_rows_for`).
        force: regenerate even when an identical twin exists.
        show_progress: a rich progress bar.

    Returns:
        The content of ``twin.json``: parameters, files, per-class shower statistics,
        ``oracle_auc`` (from the latent variables) and the time it took.
    """
    from sklearn.metrics import roc_auc_score

    folder = Path(folder)
    if n_per_class < 1:
        raise DataError(folder, "a positive number of synthetic crops per class", str(n_per_class))
    if not force and twin_is_current(folder, n_per_class, seed, chunk_rows):
        return artifacts.read_json(folder / "twin.json")
    folder.mkdir(parents=True, exist_ok=True)
    rows = chunk_rows_for(n_per_class, chunk_rows)
    progress, task, ctx = None, None, None
    if show_progress:
        from rich.progress import Progress

        ctx = Progress()
        ctx.start()
        task = ctx.add_task("electron_photon twin", total=2 * n_per_class)
        progress = lambda k: ctx.advance(task, k)  # noqa: E731
    try:
        lat_g, st_g = _write_file(folder / PHOTON_FILE, 0, n_per_class, seed, rows, progress)
        lat_e, st_e = _write_file(folder / ELECTRON_FILE, 1, n_per_class, seed, rows, progress)
    finally:
        if ctx is not None:
            ctx.stop()
    with artifacts.atomic_path(folder / "latents.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, photon=lat_g, electron=lat_e)
    u = np.concatenate([lat_g, lat_e])
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)])
    info = {
        "task": "electron_photon",
        "parameters": twin_params(n_per_class, seed, chunk_rows),
        "files": list(FILES),
        "layout": {"X": [n_per_class, SIZE, SIZE, 2], "y": [n_per_class], "dtype": "float32",
                   "compression": "gzip", "chunk_rows": rows, "axes": "sample, eta, phi, (energy, time)"},
        "oracle_auc": float(roc_auc_score(y, latent_likelihood_ratio(u))),
        "oracle": "ROC AUC of p(u|electron)/p(u|photon) for the latent phi-spread u of every crop",
        "stats": {"photon": st_g, "electron": st_e},
    }
    artifacts.write_json(folder / "twin.json", info)
    return info


def oracle_auc(folder, photon_rows=None, electron_rows=None) -> float:
    """Oracle AUC of the twin in ``folder`` on a subset (row indices per file; None: all)."""
    from sklearn.metrics import roc_auc_score

    with np.load(Path(folder) / "latents.npz") as z:
        g, e = z["photon"], z["electron"]
    g = g if photon_rows is None else g[np.asarray(photon_rows, dtype=np.int64)]
    e = e if electron_rows is None else e[np.asarray(electron_rows, dtype=np.int64)]
    if len(g) == 0 or len(e) == 0:
        return float("nan")
    y = np.concatenate([np.zeros(len(g)), np.ones(len(e))])
    return float(roc_auc_score(y, latent_likelihood_ratio(np.concatenate([g, e]))))
