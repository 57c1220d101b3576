"""Synthetic twin of the dy_electron NanoAOD samples.

One ROOT file per CMS sample (``DYJetsToLL_M-50.root``, ``TTJets.root``, ``WW.root``...)
with the NanoAOD schema the reader needs: tree ``Events`` with ``nElectron`` +
``Electron_{pt,eta,phi,miniPFRelIso_all,miniPFRelIso_chg,dz,dxy,ip3d,charge}`` (float32,
charge int32), ``nJet`` + ``Jet_{pt,eta,phi,btagDeepFlavB}``, ``MET_pt``, ``genWeight``
and ``run``/``luminosityBlock``/``event``, ZLIB(1)-compressed like the real files,
written in several baskets. (uproot writes the counters ``nElectron``/``nJet`` as
int32, as Run 3 NanoAOD does; Run 2 files store them as uint32.)

Physics model. Every event has latent variables drawn from process-dependent
distributions:

* the electron content ``c``: two prompt electrons, one prompt + one non-prompt, one
  prompt, one non-prompt, two non-prompt, or none;
* the true pair mass ``m`` (used when there are two electrons): Drell-Yan M-50 is a
  Breit-Wigner Z peak with a small 1/m^2 photon continuum; M-10to50 is the 1/m^2
  low-mass part; top and WW give a broad gamma-shaped spectrum; WZ and ZZ a mix of
  Z peak and broad spectrum;
* the number of jets (Poisson) and of true b jets among them (binomial): top samples
  have more, and b-tagged, jets;
* the true missing transverse momentum (gamma): neutrinos in top and diboson events.

Everything else is drawn from class-independent distributions given those latents:
the pair is built from ``m``, a transverse momentum that grows with the number of jets,
a rapidity and isotropic decay angles; prompt electrons are isolated with small impact
parameters, non-prompt ones (from b/c decays) are not isolated and displaced; pairs of
prompt electrons have opposite charge; b jets have high DeepFlavB scores; the
reconstructed pT, jets and MET are smeared; electrons outside pT > 5 GeV, |eta| < 2.5
are not stored. Because the classes differ only through the latents, the likelihood
ratio of the latents is the best possible classifier: its AUC on the events passing the
default preselection is recorded as ``oracle_auc`` in ``twin.json``.

Example:
    >>> from kerahep.data.synthetic.nanoaod import make_twin
    >>> files = make_twin("data/synthetic/dy_electron/nanoaod", 2000, seed=0)  # doctest: +SKIP
    >>> files["signal"]  # doctest: +SKIP
    ['.../DYJetsToLL_M-10to50.root', '.../DYJetsToLL_M-50.root']
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

VERSION = 1
Z_MASS, Z_HALF_WIDTH = 91.1876, 2.4952 / 2
M_RANGE = (10.0, 300.0)
# electron content configurations: (number of prompt, number of non-prompt electrons)
CONFIGS = ((2, 0), (1, 1), (1, 0), (0, 1), (0, 2), (0, 0))

# per process: electron-content probabilities (over CONFIGS), mass model
# (fraction of Z peak, fraction of 1/m^2 continuum, its range, gamma shape k and scale of
# the broad part), Poisson mean number of jets, b fraction of jets, MET gamma (k, scale),
# fraction of negative generator weights and the weight magnitude.
PROCESSES = {
    "DYJetsToLL_M-10to50": dict(config=(0.90, 0.03, 0.05, 0.005, 0.005, 0.01), z=0.0, lowmass=1.0,
                                lm_range=(10.0, 50.0), gamma=(2.2, 38.0), jets=0.5, bfrac=0.03,
                                met=(1.5, 10.0), negw=0.16, w=26067.89),
    "DYJetsToLL_M-50": dict(config=(0.92, 0.02, 0.04, 0.005, 0.005, 0.01), z=0.92, lowmass=0.08,
                            lm_range=(50.0, 300.0), gamma=(2.2, 38.0), jets=0.8, bfrac=0.03,
                            met=(1.5, 12.0), negw=0.16, w=26067.89),
    "ST_t-channel_top": dict(config=(0.02, 0.08, 0.40, 0.20, 0.05, 0.25), z=0.0, lowmass=0.0,
                             lm_range=(10.0, 50.0), gamma=(2.0, 35.0), jets=2.2, bfrac=0.45,
                             met=(2.0, 25.0), negw=0.0, w=1.0),
    "ST_t-channel_antitop": dict(config=(0.02, 0.08, 0.40, 0.20, 0.05, 0.25), z=0.0, lowmass=0.0,
                                 lm_range=(10.0, 50.0), gamma=(2.0, 35.0), jets=2.2, bfrac=0.45,
                                 met=(2.0, 25.0), negw=0.0, w=1.0),
    "ST_tW_top": dict(config=(0.12, 0.10, 0.35, 0.15, 0.03, 0.25), z=0.0, lowmass=0.0,
                      lm_range=(10.0, 50.0), gamma=(2.2, 38.0), jets=2.5, bfrac=0.40,
                      met=(2.5, 28.0), negw=0.0, w=1.0),
    "ST_tW_antitop": dict(config=(0.12, 0.10, 0.35, 0.15, 0.03, 0.25), z=0.0, lowmass=0.0,
                          lm_range=(10.0, 50.0), gamma=(2.2, 38.0), jets=2.5, bfrac=0.40,
                          met=(2.5, 28.0), negw=0.0, w=1.0),
    "TTJets": dict(config=(0.12, 0.12, 0.30, 0.16, 0.05, 0.25), z=0.0, lowmass=0.0,
                   lm_range=(10.0, 50.0), gamma=(2.2, 40.0), jets=3.5, bfrac=0.50,
                   met=(2.5, 28.0), negw=0.0, w=1.0),
    "WW": dict(config=(0.25, 0.05, 0.45, 0.05, 0.005, 0.195), z=0.0, lowmass=0.0,
               lm_range=(10.0, 50.0), gamma=(2.5, 40.0), jets=1.0, bfrac=0.05,
               met=(2.5, 25.0), negw=0.0, w=1.0),
    "WZ": dict(config=(0.45, 0.05, 0.35, 0.05, 0.005, 0.095), z=0.55, lowmass=0.0,
               lm_range=(10.0, 50.0), gamma=(2.2, 38.0), jets=1.3, bfrac=0.06,
               met=(2.0, 20.0), negw=0.0, w=1.0),
    "ZZ": dict(config=(0.60, 0.02, 0.20, 0.03, 0.005, 0.145), z=0.65, lowmass=0.0,
               lm_range=(10.0, 50.0), gamma=(2.2, 38.0), jets=1.0, bfrac=0.06,
               met=(1.5, 15.0), negw=0.0, w=1.0),
}
SIGNAL = ("DYJetsToLL_M-10to50", "DYJetsToLL_M-50")
BACKGROUND = ("ST_t-channel_top", "ST_t-channel_antitop", "ST_tW_top", "ST_tW_antitop", "TTJets", "WW", "WZ",
              "ZZ")
BASKET_EVENTS = 5000


# ----------------------------------------------------------------- latent densities
def _cauchy_cdf(x):
    return 0.5 + np.arctan((x - Z_MASS) / Z_HALF_WIDTH) / np.pi


def _z_logpdf(m):
    lo, hi = 50.0, M_RANGE[1]
    norm = _cauchy_cdf(hi) - _cauchy_cdf(lo)
    pdf = (Z_HALF_WIDTH / np.pi) / ((m - Z_MASS) ** 2 + Z_HALF_WIDTH**2) / norm
    return np.where((m >= lo) & (m <= hi), np.log(np.maximum(pdf, 1e-300)), -np.inf)


def _invsq_logpdf(m, a, b):
    norm = 1.0 / a - 1.0 / b
    return np.where((m >= a) & (m <= b), -2.0 * np.log(m) - np.log(norm), -np.inf)


def _gamma_logpdf(x, k, scale, shift=0.0):
    from scipy.special import gammaln

    y = np.maximum(x - shift, 1e-300)
    out = (k - 1) * np.log(y) - y / scale - gammaln(k) - k * np.log(scale)
    return np.where(x > shift, out, -np.inf)


def _mass_logpdf(m, p):
    parts = []
    fz, fl = p["z"], p["lowmass"]
    fb = 1.0 - fz - fl
    if fz > 0:
        parts.append(np.log(fz) + _z_logpdf(m))
    if fl > 0:
        parts.append(np.log(fl) + _invsq_logpdf(m, *p["lm_range"]))
    if fb > 1e-12:
        parts.append(np.log(fb) + _gamma_logpdf(m, *p["gamma"], shift=M_RANGE[0]))
    return np.logaddexp.reduce(np.stack(parts), axis=0)


def _latent_logpdf(lat, p):
    """log p(latents | process p) for the latents that shape the observed event."""
    from scipy.stats import binom, poisson

    cfg = np.log(np.asarray(p["config"]))[lat["config"]]
    two = np.asarray([a + b == 2 for a, b in CONFIGS])[lat["config"]]
    mass = np.where(two, _mass_logpdf(lat["m"], p), 0.0)
    nj = poisson.logpmf(lat["n_jets"], p["jets"])
    nb = binom.logpmf(lat["n_b"], lat["n_jets"], p["bfrac"])
    met = _gamma_logpdf(lat["met"], *p["met"])
    return cfg + mass + nj + nb + met


# ----------------------------------------------------------------- sampling
def _sample_mass(rng, n, p):
    fz, fl = p["z"], p["lowmass"]
    comp = rng.choice(3, size=n, p=[fz, fl, max(0.0, 1.0 - fz - fl)])
    u = rng.random(n)
    lo, hi = 50.0, M_RANGE[1]
    cz = _cauchy_cdf(lo) + u * (_cauchy_cdf(hi) - _cauchy_cdf(lo))
    mz = Z_MASS + Z_HALF_WIDTH * np.tan(np.pi * (cz - 0.5))
    a, b = p["lm_range"]
    ml = 1.0 / (1.0 / a - u * (1.0 / a - 1.0 / b))
    mb = M_RANGE[0] + rng.gamma(p["gamma"][0], p["gamma"][1], n)
    return np.select([comp == 0, comp == 1], [mz, ml], mb)


def _latents(rng, n, p):
    config = rng.choice(len(CONFIGS), size=n, p=np.asarray(p["config"]) / np.sum(p["config"]))
    n_jets = rng.poisson(p["jets"], n)
    return dict(config=config, m=_sample_mass(rng, n, p), n_jets=n_jets, n_b=rng.binomial(n_jets, p["bfrac"]),
                met=rng.gamma(p["met"][0], p["met"][1], n))


def _pair(rng, m, n_jets):
    """Two massless electrons from a pair of mass m (class-independent kinematics)."""
    n = len(m)
    qt = rng.gamma(1.6, 5.0 + 14.0 * n_jets)
    y = rng.normal(0.0, 1.3, n)
    Phi = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(m**2 + qt**2)
    E, px, py, pz = mt * np.cosh(y), qt * np.cos(Phi), qt * np.sin(Phi), mt * np.sinh(y)
    bx, by, bz = px / E, py / E, pz / E
    b2 = np.maximum(bx**2 + by**2 + bz**2, 1e-12)
    g = 1.0 / np.sqrt(1.0 - np.minimum(b2, 1 - 1e-12))
    cth = rng.uniform(-1, 1, n)
    sth = np.sqrt(1 - cth**2)
    ph = rng.uniform(-np.pi, np.pi, n)
    out = []
    for sgn in (1.0, -1.0):
        e = m / 2
        kx, ky, kz = sgn * e * sth * np.cos(ph), sgn * e * sth * np.sin(ph), sgn * e * cth
        bp = bx * kx + by * ky + bz * kz
        f = (g - 1) * bp / b2 + g * e
        lx, ly, lz = kx + f * bx, ky + f * by, kz + f * bz
        pt = np.hypot(lx, ly)
        out.append((pt, np.arcsinh(lz / np.maximum(pt, 1e-9)), np.arctan2(ly, lx)))
    return out


def _single(rng, prompt):
    n = len(prompt)
    pt = np.where(prompt, 22.0 + rng.gamma(2.0, 12.0, n), 5.0 + rng.exponential(8.0, n))
    return pt, rng.normal(0.0, 1.3, n), rng.uniform(-np.pi, np.pi, n)


def _electron_props(rng, prompt):
    n = len(prompt)
    iso = np.where(prompt, rng.exponential(0.025, n), 0.05 + rng.exponential(0.35, n))
    chg = iso * np.where(prompt, rng.uniform(0.2, 1.0, n), rng.uniform(0.4, 1.0, n))
    dxy = np.where(prompt, rng.normal(0.0, 0.004, n), rng.laplace(0.0, 0.03, n))
    dz = np.where(prompt, rng.normal(0.0, 0.008, n), rng.laplace(0.0, 0.06, n))
    ip3d = np.sqrt(dxy**2 + dz**2)
    return iso, chg, dz, dxy, ip3d


def _events(rng, n, p):
    """Latents and the NanoAOD arrays of ``n`` events of process ``p``."""
    import awkward as ak

    lat = _latents(rng, n, p)
    cfg = np.asarray(CONFIGS)[lat["config"]]
    n_prompt, n_np = cfg[:, 0], cfg[:, 1]
    n_e = n_prompt + n_np
    # up to two electron slots per event; slot 0 is prompt when there is a prompt one
    pair = _pair(rng, lat["m"], lat["n_jets"])
    prompt0 = n_prompt >= 1
    prompt1 = n_prompt >= 2
    s0, s1 = _single(rng, prompt0), _single(rng, prompt1)
    two = n_e == 2
    kin = [[np.where(two, pair[k][j], s[j]) for j in range(3)] for k, s in ((0, s0), (1, s1))]
    slots = []
    for k, prompt in ((0, prompt0), (1, prompt1)):
        pt, eta, phi = kin[k]
        pt = pt * (1.0 + 0.02 * rng.normal(size=n))
        iso, chg, dz, dxy, ip3d = _electron_props(rng, prompt)
        q = rng.choice(np.array([-1, 1], np.int32), size=n)
        exists = n_e > k
        slots.append(dict(pt=pt, eta=eta, phi=phi, miniPFRelIso_all=iso, miniPFRelIso_chg=chg, dz=dz, dxy=dxy,
                          ip3d=ip3d, charge=q, exists=exists))
    # prompt pairs (Z, WW, ttbar dileptons) are opposite-sign; a 0.3% charge flip
    flip = rng.random(n) < 0.003
    slots[1]["charge"] = np.where(prompt1 & ~flip, -slots[0]["charge"], slots[1]["charge"]).astype(np.int32)
    for s in slots:
        s["exists"] &= (s["pt"] > 5.0) & (np.abs(s["eta"]) < 2.5)
    # store sorted by pt (NanoAOD order)
    swap = slots[1]["exists"] & (~slots[0]["exists"] | (slots[1]["pt"] > slots[0]["pt"]))
    fields = list(slots[0].keys())
    a = {f: np.where(swap, slots[1][f], slots[0][f]) for f in fields}
    b = {f: np.where(swap, slots[0][f], slots[1][f]) for f in fields}
    cnt = a["exists"].astype(np.int64) + b["exists"].astype(np.int64)
    # interleave slot a then b, keeping existing ones
    keep = np.stack([a["exists"], b["exists"]], axis=1).ravel()
    electrons = {}
    for f in fields:
        if f == "exists":
            continue
        flat = np.stack([a[f], b[f]], axis=1).ravel()[keep]
        dtype = np.int32 if f == "charge" else np.float32
        electrons[f] = ak.unflatten(flat.astype(dtype), cnt)

    # jets: Pareto pT from 20 GeV, sorted; b flags on random jets
    nj = lat["n_jets"]
    tot = int(nj.sum())
    jpt = 20.0 * rng.random(tot) ** (-1 / 2.2)
    jeta = np.clip(rng.normal(0, 1.8, tot), -4.7, 4.7)
    jphi = rng.uniform(-np.pi, np.pi, tot)
    ev = np.repeat(np.arange(n), nj)
    order = np.lexsort((-jpt, ev))
    jpt = jpt[order]
    # within each event, mark n_b random jets as b: rank of a random key below n_b
    key = rng.random(tot)
    korder = np.lexsort((key, ev))
    rank = np.empty(tot, np.int64)
    starts = np.cumsum(nj) - nj
    rank[korder] = np.arange(tot) - np.repeat(starts, nj)
    isb = rank < np.repeat(lat["n_b"], nj)
    btag = np.where(isb, rng.beta(5.0, 1.3, tot), rng.beta(0.7, 10.0, tot))
    jets = {"pt": jpt, "eta": jeta, "phi": jphi, "btagDeepFlavB": btag}
    jets = {k: ak.unflatten(v.astype(np.float32), nj) for k, v in jets.items()}

    mphi = rng.uniform(-np.pi, np.pi, n)
    mx = lat["met"] * np.cos(mphi) + rng.normal(0, 8.0, n)
    my = lat["met"] * np.sin(mphi) + rng.normal(0, 8.0, n)
    met = np.hypot(mx, my).astype(np.float32)
    sign = np.where(rng.random(n) < p["negw"], -1.0, 1.0)
    gw = (sign * p["w"]).astype(np.float32)
    good = (np.stack([a["exists"] & (a["pt"] > 10) & (np.abs(a["eta"]) < 2.5),
                      b["exists"] & (b["pt"] > 10) & (np.abs(b["eta"]) < 2.5)], 1).sum(1))
    return lat, dict(Electron=electrons, Jet=jets, MET_pt=met, genWeight=gw), good >= 1


def _write_root(path: Path, arrays: dict, first_event: int):
    import awkward as ak
    import uproot

    from ...data.nanoaod import ELECTRON_FIELDS, JET_FIELDS
    from ...artifacts import atomic_path

    etype = "var * {" + ", ".join(f"{f}: {'int32' if f == 'charge' else 'float32'}" for f in ELECTRON_FIELDS) + "}"
    jtype = "var * {" + ", ".join(f"{f}: float32" for f in JET_FIELDS) + "}"
    types = {
        "run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64,
        "Electron": ak.types.from_datashape(etype, highlevel=False),
        "Jet": ak.types.from_datashape(jtype, highlevel=False),
        "MET_pt": np.float32, "genWeight": np.float32,
    }
    n = len(arrays["MET_pt"])
    with atomic_path(path, suffix=".root") as tmp, uproot.recreate(tmp, compression=uproot.ZLIB(1)) as f:
        tree = f.mktree("Events", types, counter_name=lambda c: "n" + c,
                        field_name=lambda outer, inner: outer + "_" + inner)
        for a in range(0, max(n, 1), BASKET_EVENTS):
            b = min(n, a + BASKET_EVENTS)
            ev = np.arange(a, b, dtype=np.uint64) + np.uint64(first_event)
            tree.extend({
                "run": np.ones(b - a, np.uint32),
                "luminosityBlock": (ev // 1000 + 1).astype(np.uint32),
                "event": ev,
                "Electron": ak.zip({k: v[a:b] for k, v in arrays["Electron"].items()}),
                "Jet": ak.zip({k: v[a:b] for k, v in arrays["Jet"].items()}),
                "MET_pt": arrays["MET_pt"][a:b],
                "genWeight": arrays["genWeight"][a:b],
            })


def twin_params(n_events_per_sample: int, seed: int) -> dict:
    return {"generator": "kerahep.data.synthetic.nanoaod", "version": VERSION,
            "n_events_per_sample": int(n_events_per_sample), "seed": int(seed),
            "basket_events": BASKET_EVENTS}


def make_twin(out_dir, n_events_per_sample: int = 2000, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the NanoAOD twin: one ROOT file per sample, and ``twin.json``.

    Args:
        out_dir: folder for the files (created).
        n_events_per_sample: events in each of the ten sample files.
        seed: random seed (the files are identical for the same seed and size).
        overwrite: rewrite even when ``twin.json`` says the files are up to date.

    Returns:
        ``{"signal": [paths], "background": [paths]}``.

    Example:
        >>> files = make_twin("/tmp/twin", 500, seed=1)  # doctest: +SKIP
    """
    from sklearn.metrics import roc_auc_score

    from ...errors import ConfigError
    from ...artifacts import read_json, write_json

    if int(n_events_per_sample) < 1:
        raise ConfigError(f"n_events_per_sample must be >= 1, got {n_events_per_sample!r}")
    out = Path(out_dir)
    params = twin_params(n_events_per_sample, seed)
    files = {"signal": [str(out / f"{s}.root") for s in SIGNAL],
             "background": [str(out / f"{s}.root") for s in BACKGROUND]}
    meta = out / "twin.json"
    if not overwrite and meta.exists() and all(Path(p).exists() for p in files["signal"] + files["background"]):
        try:
            if read_json(meta).get("params") == params:
                return files
        except ValueError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    n = int(n_events_per_sample)
    lat_all, sel_all, y_all, samples = [], [], [], {}
    for i, name in enumerate(SIGNAL + BACKGROUND):
        rng = np.random.default_rng([int(seed), i, 20240611])
        lat, arrays, sel = _events(rng, n, PROCESSES[name])
        _write_root(out / f"{name}.root", arrays, first_event=1 + i * 10_000_000)
        lat_all.append(lat)
        sel_all.append(sel)
        y_all.append(np.full(n, 1 if name in SIGNAL else 0))
        samples[name] = {"role": "signal" if name in SIGNAL else "background", "file": f"{name}.root",
                         "events": n, "passing_default_preselection": int(sel.sum()),
                         "process": PROCESSES[name]}
    lat = {k: np.concatenate([x[k] for x in lat_all]) for k in lat_all[0]}
    sel = np.concatenate(sel_all)
    y = np.concatenate(y_all)
    # likelihood ratio of the latents: class densities are equal mixtures of their samples
    logs = {name: _latent_logpdf(lat, PROCESSES[name]) for name in SIGNAL + BACKGROUND}
    ls = np.logaddexp.reduce(np.stack([logs[s] for s in SIGNAL]), axis=0) - math.log(len(SIGNAL))
    lb = np.logaddexp.reduce(np.stack([logs[s] for s in BACKGROUND]), axis=0) - math.log(len(BACKGROUND))
    llr = np.clip(ls - lb, -700, 700)
    oracle = float(roc_auc_score(y[sel], llr[sel])) if len(np.unique(y[sel])) == 2 else None
    oracle_all = float(roc_auc_score(y, llr))
    write_json(meta, {
        "params": params,
        "format": "CMS NanoAOD schema (tree Events; nElectron/Electron_*, nJet/Jet_*, MET_pt, genWeight, "
                  "run/luminosityBlock/event), ZLIB(1), written with uproot",
        "samples": samples,
        "oracle_auc": oracle,
        "oracle_auc_note": "AUC of the latent likelihood ratio (electron content, true pair mass, jet and b-jet "
                           "multiplicities, true MET) on the events passing the default preselection "
                           "(>= 1 electron with pt > 10 GeV, |eta| < 2.5); samples weighted equally",
        "oracle_auc_all_events": oracle_all,
        "files": files,
    })
    return files
