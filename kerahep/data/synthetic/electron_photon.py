"""Synthetic twin of the ML4SCI electron/photon calorimeter crops.

Writes ``SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5`` and
``SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5`` in the layout of the real files: ``X``
``(N, 32, 32, 2)`` float32 (channel 0 hit energy, channel 1 hit time; axis 1 is eta,
axis 2 is phi), ``y`` ``(N,)`` float32 (all 0.0 for photons, all 1.0 for electrons),
both gzip-compressed and chunked along the sample axis.

The showers follow what is known of the real files (README, electron_photon: no negative
energies, about 95% of the pixels zero, energy sum about 1.23 for both classes, photons
peakier, electrons wider along phi) and, since version 4, how weakly each shower-shape
feature separates the classes on real crops (issue 19: single-feature ROC AUC about 0.62
for the energy-weighted width along the wide axis, the maximum pixel over the energy sum
and the number of hit pixels, while a ResNet-15 on the whole energy image reaches 0.816):
the separation comes from several weak, independent class latents that a model has to
combine, each blurred by fluctuations drawn the same way for both classes. Version 5 (issue
19) matches the published ResNet-15 AUC of each input choice as well (energy only, time
only, both channels, dual stream; mean of four run seeds at the default size): a wider eta
shower for electrons, which the energy image shows but none of the three features measures
alone, and a sharper time resolution with the radiated energy a little later, so that the
time channel alone separates as on the real files and adds no noise to the energy.

Each crop is a compact electromagnetic shower centred on pixel (16, 16) (a narrow core
plus a wider halo, integrated over the pixels). Four latents per crop (:data:`LATENTS`)
carry the class:

* ``brem`` ``u`` >= 0: a fraction ``b(u)`` of the energy is spread along phi over ``L(u)``
  pixels on one side of the core (bremsstrahlung for electrons, an asymmetric conversion
  for photons). Electrons draw ``u`` from a Gamma distribution; photons from a mixture of
  a narrow one (unconverted) and the electron one (converted).
* ``core_width``: the log of the core's width factor (normal; electrons slightly wider).
* ``satellites``: the number (binomial) of small separate deposits 1.5-4 pixels away along
  phi (radiated photons; more for electrons), their energy taken from the core.
* ``eta_width``: the log of the shower's eta width factor (normal; electrons a little wider).

The class-independent fluctuations blur what any one feature shows: total energy, impact
point within the central pixel (sharing of the core energy), halo fraction, halo width and
its phi elongation (off by default), unrelated pile-up deposits anywhere in the crop (with out-of-time
times), and the per-crop noise level. The latents are independent given the class, so the
product of their likelihood ratios is the Bayes-optimal classifier given the latents; its
ROC AUC, the *oracle AUC*, is recorded in ``twin.json`` with each latent's own AUC and the
twin's three single-feature AUCs (the features of :mod:`kerahep.data.shower_shapes`, which
the fidelity report :mod:`kerahep.benchmarks.twins` compares with the real crops). The per-crop latents ``(n, 4)`` are written to
``latents.npz`` so that the oracle can be evaluated on exactly a model's test crops. The
oracle bounds what a model can reach; the images hide part of it behind the fluctuations.

Pixel fluctuations are Poisson-like (variance proportional to the energy) plus
electronic noise, and hits below a zero-suppression threshold read zero, which leaves
about 95% of the pixels empty. The time channel is non-zero on hit pixels only, with a
resolution that worsens at low energy, clipped to [-2.5, 2.3]; the radiated energy (brem,
satellites) arrives slightly late and pile-up deposits at random times, so the time
channel carries the hit pattern, a weak image of the energies through its resolution and a
weak time signature of the radiated hits.

Example:
    >>> from kerahep.data.synthetic.electron_photon import generate
    >>> info = generate("data/synthetic/electron_photon", n_per_class=2000, seed=1)
    >>> round(info["feature_aucs"]["width_wide_auc"], 2)  # doctest: +SKIP
    0.62
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ... import artifacts
from ...errors import DataError
# the shower-shape features whose AUCs twin.json records (also attributes of this module)
from ..shower_shapes import feature_auc, hit_pixels, max_over_sum, shower_widths, wide_axis

PHOTON_FILE = "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5"
ELECTRON_FILE = "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"
FILES = (PHOTON_FILE, ELECTRON_FILE)
SIZE = 32
CENTRE = 16
TWIN_VERSION = 5
#: rows per HDF5 chunk of the real files (249000 = 25 x 9960, written in dask chunks of 9960)
REAL_CHUNK_ROWS = 9960

#: the per-crop latent variables that carry the class (columns of :func:`sample_latent`, of
#: ``latents.npz``); everything else a crop is drawn from is the same for both classes
LATENTS = ("brem", "core_width", "satellites", "eta_width")

#: shower and detector parameters (recorded in twin.json; a change regenerates the twin)
PARAMS = {
    # class-independent shower and detector fluctuations
    "energy_mean": 1.28,        # deposited energy before zero suppression (sum after it: about 1.23)
    "energy_sigma": 0.05,
    "impact_range": 0.45,        # impact point uniform within +-0.45 pixel of (16, 16)
    "core_sigma": 0.25,         # pixels; narrow core of the EM shower (times the core_width latent)
    "halo_sigma": 2.8,          # pixels; wider halo
    "halo_sigma_spread": 0.05,   # log-normal spread of the halo width per crop
    "halo_phi_spread": 0.0,     # log-normal spread of the halo's phi width alone (elongation) per crop
    "halo_fraction": 0.17,
    "halo_fraction_spread": 0.05,  # log-normal spread of the halo fraction per crop
    "eta_squeeze": 0.75,         # core and halo narrower in eta than in phi (times the eta_width latent)
    "pileup_mean": 0.7,         # Poisson number of unrelated deposits anywhere in the crop
    "pileup_max": 5,
    "pileup_energy": 0.012,     # exponential energy of each
    "pileup_sigma": 0.5,
    "stochastic": 1.0e-4,       # Poisson-like variance per unit energy
    "noise_sigma": 3.0e-4,      # electronic noise per pixel (times a per-crop log-normal factor)
    "noise_spread": 0.05,
    "threshold": 0.0016,        # zero suppression
    # class latents: brem (energy fraction radiated along phi), core width, satellites, eta width
    "brem_max_fraction": 0.15,  # b(u) = brem_max_fraction * u / (1 + u), taken from the core
    "brem_length": 4.0,         # L(u) = brem_length * u pixels along phi
    "brem_sigma": 0.6,          # spread of the radiated energy around its line
    "brem_points": 8,
    "u_shape_electron": 3.0,    # Gamma(k, theta) of u for electrons (and converted photons)
    "u_scale_electron": 0.3,
    "u_scale_photon": 0.06,     # exponential u of unconverted photons
    "conversion_fraction": 0.55,
    "core_log_mean_electron": 0.08,  # log of the core width factor: normal, mean 0 for photons
    "core_log_sigma": 0.2,
    "satellites_max": 6,        # satellites: Binomial(satellites_max, p) separate small deposits
    "satellite_p_electron": 0.25,
    "satellite_p_photon": 0.08,
    "satellite_energy": 0.012,  # exponential energy of each, taken from the core
    "satellite_phi": (1.5, 4.0),  # distance along phi (either side), uniform
    "satellite_eta_sigma": 1.0,
    "satellite_sigma": 0.5,
    "eta_log_mean_electron": 0.09,  # log of the eta width factor: normal, mean 0 for photons (v4: 0.03)
    "eta_log_sigma": 0.1,
    # time channel
    "time_sigma_const": 0.08,   # time resolution: sqrt((a / (E/0.01))^2 + c^2) (v4: c 0.25, a 0.5)
    "time_sigma_stoch": 0.1,
    "time_late": 0.4,           # radiated energy (brem, satellites) arrives later than the core (v4: 0.3)
    "pileup_time": 2.0,         # unrelated deposits: time uniform in +-pileup_time
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
    """Draw the class latents ``(n, 4)`` (columns :data:`LATENTS`) for ``n`` crops of class ``label``."""
    e = label == 1
    u_e = rng.gamma(p["u_shape_electron"], p["u_scale_electron"], n)
    if e:
        u = u_e
    else:
        converted = rng.random(n) < p["conversion_fraction"]
        u = np.where(converted, u_e, rng.exponential(p["u_scale_photon"], n))
    core = rng.normal(p["core_log_mean_electron"] if e else 0.0, p["core_log_sigma"], n)
    sat = rng.binomial(p["satellites_max"], p["satellite_p_electron"] if e else p["satellite_p_photon"], n)
    eta = rng.normal(p["eta_log_mean_electron"] if e else 0.0, p["eta_log_sigma"], n)
    return np.stack([u, core, sat.astype(np.float64), eta], axis=1)


def latent_log_ratios(lat, p=PARAMS) -> np.ndarray:
    """Per latent, ``log p(latent | electron) - log p(latent | photon)``, shape ``(n, 4)``."""
    from scipy import stats

    lat = np.asarray(lat, dtype=np.float64).reshape(-1, len(LATENTS))
    u, core, sat, eta = lat.T
    g = stats.gamma.pdf(u, p["u_shape_electron"], scale=p["u_scale_electron"])
    ex = stats.expon.pdf(u, scale=p["u_scale_photon"])
    c = p["conversion_fraction"]
    brem = np.log(np.maximum(g, 1e-300)) - np.log(np.maximum((1 - c) * ex + c * g, 1e-300))
    sc = p["core_log_sigma"]
    core_r = (stats.norm.logpdf(core, p["core_log_mean_electron"], sc) - stats.norm.logpdf(core, 0.0, sc))
    k = np.rint(sat)
    sat_r = (stats.binom.logpmf(k, p["satellites_max"], p["satellite_p_electron"])
             - stats.binom.logpmf(k, p["satellites_max"], p["satellite_p_photon"]))
    se = p["eta_log_sigma"]
    eta_r = stats.norm.logpdf(eta, p["eta_log_mean_electron"], se) - stats.norm.logpdf(eta, 0.0, se)
    return np.stack([brem, core_r, sat_r, eta_r], axis=1)


def latent_likelihood_ratio(lat, p=PARAMS) -> np.ndarray:
    """p(latents | electron) / p(latents | photon): the Bayes-optimal score given the latents
    (independent given the class, so the product of their ratios)."""
    return np.exp(np.clip(latent_log_ratios(lat, p).sum(axis=1), -700, 700))


def make_crops(rng, lat: np.ndarray, p=PARAMS) -> np.ndarray:
    """Render crops ``(n, 32, 32, 2)`` float32 for latents ``lat`` ``(n, 4)`` (the class enters only through them)."""
    lat = np.asarray(lat, dtype=np.float64).reshape(-1, len(LATENTS))
    n = len(lat)
    u, core_log, sat, eta_log = lat.T
    energy = np.clip(rng.normal(p["energy_mean"], p["energy_sigma"], n), 0.6, 2.0)
    r = p["impact_range"]
    eta0 = CENTRE + rng.uniform(-r, r, n)
    phi0 = CENTRE + rng.uniform(-r, r, n)
    b = p["brem_max_fraction"] * u / (1.0 + u)
    length = p["brem_length"] * u
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    kb, ks, kp = p["brem_points"], p["satellites_max"], p["pileup_max"]
    # satellites: the first `sat` of ks slots are present; energies taken from the core
    present = np.arange(ks)[None, :] < sat[:, None]
    e_sat = np.where(present, rng.exponential(p["satellite_energy"], (n, ks)), 0.0)
    e_sat = np.minimum(e_sat, 0.3 / ks)
    sat_side = np.where(rng.random((n, ks)) < 0.5, -1.0, 1.0)
    sat_phi = phi0[:, None] + sat_side * rng.uniform(*p["satellite_phi"], (n, ks))
    sat_eta = eta0[:, None] + p["satellite_eta_sigma"] * rng.standard_normal((n, ks))
    # pile-up: unrelated deposits anywhere, energy added
    n_pu = np.minimum(rng.poisson(p["pileup_mean"], n), kp)
    e_pu = np.where(np.arange(kp)[None, :] < n_pu[:, None], rng.exponential(p["pileup_energy"], (n, kp)), 0.0)
    pu_eta = rng.uniform(-0.5, SIZE - 0.5, (n, kp))
    pu_phi = rng.uniform(-0.5, SIZE - 0.5, (n, kp))
    halo = np.clip(p["halo_fraction"] * np.exp(p["halo_fraction_spread"] * rng.standard_normal(n)), 0.02, 0.5)
    halo_sigma = p["halo_sigma"] * np.exp(p["halo_sigma_spread"] * rng.standard_normal(n))
    core_sigma = p["core_sigma"] * np.exp(core_log)
    eta_f = p["eta_squeeze"] * np.exp(eta_log)
    # components: core, halo, kb brem points along phi, ks satellites, kp pile-up deposits
    m = 2 + kb + ks + kp
    e_comp = np.empty((n, m))
    e_comp[:, 0] = energy * (1 - halo - b) - e_sat.sum(1)  # radiated energy leaves the core, not the halo
    e_comp[:, 1] = energy * halo
    e_comp[:, 2:2 + kb] = (energy * b / kb)[:, None]
    e_comp[:, 2 + kb:2 + kb + ks] = e_sat
    e_comp[:, 2 + kb + ks:] = e_pu
    pos = (np.arange(kb) + 0.5) / kb
    mu_phi = np.concatenate([phi0[:, None], phi0[:, None], phi0[:, None] + side[:, None] * length[:, None] * pos,
                             sat_phi, pu_phi], 1)
    mu_eta = np.concatenate([eta0[:, None], eta0[:, None], np.repeat(eta0[:, None], kb, 1), sat_eta, pu_eta], 1)
    s_phi = np.concatenate([core_sigma[:, None], halo_sigma[:, None], np.full((n, kb), p["brem_sigma"]),
                            np.full((n, ks), p["satellite_sigma"]), np.full((n, kp), p["pileup_sigma"])], 1)
    s_eta = s_phi.copy()
    s_eta[:, :2] *= eta_f[:, None]
    s_phi[:, 1] *= np.exp(p["halo_phi_spread"] * rng.standard_normal(n))  # the shower itself; radiated photons and pile-up: showers of their own
    t_comp = np.zeros((n, m))
    t_comp[:, 2:2 + kb + ks] = p["time_late"]
    t_comp[:, 2 + kb + ks:] = rng.uniform(-p["pileup_time"], p["pileup_time"], (n, kp))
    pe = _pixel_integrals(mu_eta, s_eta)  # (n, comps, 32)
    pp = _pixel_integrals(mu_phi, s_phi)
    img = np.einsum("nc,nci,ncj->nij", e_comp, pe, pp)
    t_mean = np.einsum("nc,nci,ncj->nij", e_comp * t_comp, pe, pp) / np.maximum(img, 1e-30)
    noise = p["noise_sigma"] * np.exp(p["noise_spread"] * rng.standard_normal((n, 1, 1)))
    noisy = img + np.sqrt(p["stochastic"] * img) * rng.standard_normal(img.shape) \
        + noise * rng.standard_normal(img.shape)
    hit = noisy > p["threshold"]
    e_out = np.where(hit, noisy, 0.0)
    sig_t = np.sqrt((p["time_sigma_stoch"] / np.maximum(e_out / 0.01, 1e-3)) ** 2 + p["time_sigma_const"] ** 2)
    t0 = rng.normal(0.0, 0.1, (n, 1, 1))
    t = np.clip(t0 + t_mean + sig_t * rng.standard_normal(img.shape), *p["time_range"])
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
    """Write one class's file; its latents ``(n, 4)``, shower statistics (first 5000 crops) and
    per-crop features (widths ``(n, 2)``, maximum over sum, hit pixels) of every crop."""
    import h5py

    lat = np.empty((n, len(LATENTS)), dtype=np.float32)
    feats = {"widths": np.empty((n, 2)), "max_over_sum": np.empty(n), "hit_pixels": np.empty(n)}
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
                feats["widths"][start:stop] = shower_widths(crops)
                feats["max_over_sum"][start:stop] = max_over_sum(crops)
                feats["hit_pixels"][start:stop] = hit_pixels(crops)
                if len(stats_x) * chunk_rows < 5000:
                    stats_x.append(crops)
                if progress is not None:
                    progress(stop - start)
    return lat, shower_stats(np.concatenate(stats_x)[:5000]), feats


def _feature_aucs(fg: dict, fe: dict) -> dict:
    """The three single-feature AUCs (separating direction, as the real values are given) and
    with electrons as positives, from the per-crop features of :func:`_write_file`."""
    axis = wide_axis(fe["widths"])
    out = {"wide_axis": axis}
    pairs = {"width_wide": (fg["widths"][:, axis - 1], fe["widths"][:, axis - 1]),
             "max_over_sum": (fg["max_over_sum"], fe["max_over_sum"]),
             "hit_pixels": (fg["hit_pixels"], fe["hit_pixels"])}
    for key, (g, e) in pairs.items():
        auc = feature_auc(g, e)
        out[f"{key}_auc"] = max(auc, 1.0 - auc)
        out[f"{key}_auc_electrons_positive"] = auc
    return out


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
        ``oracle_auc`` (from the latent variables), ``latent_aucs`` (each latent's likelihood
        ratio alone) and ``feature_aucs`` (the three single-feature AUCs of every crop, as in
        :mod:`kerahep.benchmarks.twins`: separating direction and electrons positive, and the
        wide axis).
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
        lat_g, st_g, f_g = _write_file(folder / PHOTON_FILE, 0, n_per_class, seed, rows, progress)
        lat_e, st_e, f_e = _write_file(folder / ELECTRON_FILE, 1, n_per_class, seed, rows, progress)
    finally:
        if ctx is not None:
            ctx.stop()
    with artifacts.atomic_path(folder / "latents.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, photon=lat_g, electron=lat_e, columns=np.array(LATENTS))
    u = np.concatenate([lat_g, lat_e])
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)])
    info = {
        "task": "electron_photon",
        "parameters": twin_params(n_per_class, seed, chunk_rows),
        "files": list(FILES),
        "layout": {"X": [n_per_class, SIZE, SIZE, 2], "y": [n_per_class], "dtype": "float32",
                   "compression": "gzip", "chunk_rows": rows, "axes": "sample, eta, phi, (energy, time)"},
        "oracle_auc": float(roc_auc_score(y, latent_likelihood_ratio(u))),
        "oracle": ("ROC AUC of p(latents|electron)/p(latents|photon), the latents (brem, core width, "
                   "satellites, eta width) of every crop"),
        "latent_aucs": {k: float(roc_auc_score(y, r)) for k, r in zip(LATENTS, latent_log_ratios(u).T)},
        "feature_aucs": _feature_aucs(f_g, f_e),
        "stats": {"photon": st_g, "electron": st_e},
    }
    artifacts.write_json(folder / "twin.json", info)
    return info


def oracle_auc(folder, photon_rows=None, electron_rows=None) -> float:
    """Oracle AUC of the twin in ``folder`` on a subset (row indices per file; None: all)."""
    from sklearn.metrics import roc_auc_score

    path = Path(folder) / "latents.npz"
    with np.load(path) as z:
        g, e = z["photon"], z["electron"]
    for a in (g, e):
        if a.ndim != 2 or a.shape[1] != len(LATENTS):
            raise DataError(path, f"latents (n, {len(LATENTS)}) with columns {', '.join(LATENTS)}",
                            f"shape {a.shape} (a twin older than version {TWIN_VERSION}: regenerate it)")
    g = g if photon_rows is None else g[np.asarray(photon_rows, dtype=np.int64)]
    e = e if electron_rows is None else e[np.asarray(electron_rows, dtype=np.int64)]
    if len(g) == 0 or len(e) == 0:
        return float("nan")
    y = np.concatenate([np.zeros(len(g)), np.ones(len(e))])
    return float(roc_auc_score(y, latent_likelihood_ratio(np.concatenate([g, e]))))
