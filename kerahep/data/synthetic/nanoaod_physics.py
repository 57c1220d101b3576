"""Physics model of the dy_electron NanoAOD twin (:mod:`kerahep.data.synthetic.nanoaod`).

Each event has latent variables drawn from process-dependent distributions
(:func:`latents`, density :func:`latent_logpdf`): the electron content (two prompt, prompt
+ non-prompt, one prompt, one non-prompt, two non-prompt or none), the true pair mass, the
numbers of b quarks and of light quarks from the hard process (top decays, W/Z -> qq, the
t-channel spectator quark), the number of initial-state-radiation (ISR) jets and the true
missing transverse momentum of the neutrinos. The number of pile-up interactions is a
latent too, drawn alike for every process.

Everything else is class-independent given the latents (:func:`sample_events`):

* jets: hard-process jets (a harder spectrum), ISR jets (a falling power law from 15 GeV)
  and pile-up jets (steeply falling, spread up to |eta| 4.7), each measured with a
  pT-dependent response that has a low tail; as in NanoAOD, whose ``Jet`` collection is not
  cleaned of leptons, every prompt electron is also clustered as a jet (about 1.25 times
  its pT); jets with pT > 15 GeV and |eta| < 4.7 are stored, sorted by pT;
* the electron pair: built from the mass, a rapidity, isotropic decay angles and a
  transverse momentum that recoils against the ISR jets; a pair with a non-prompt electron
  has a broad (combinatorial) mass; prompt electrons have small impact parameters (a
  Gaussian core with a pile-up-vertex tail) and zero ``miniPFRelIso_all`` most of the time
  (less often in busy events), non-prompt ones (from b/c decays) are displaced and not
  isolated; prompt pairs are opposite-sign up to an eta-dependent charge flip;
* MET: the neutrinos' true MET plus the jets' mismeasurement plus an unclustered term
  whose resolution grows with pile-up.
"""

from __future__ import annotations

import math

import numpy as np

Z_MASS, Z_HALF_WIDTH = 91.1876, 2.4952 / 2
M_RANGE = (10.0, 300.0)
# electron content configurations: (number of prompt, number of non-prompt electrons)
CONFIGS = ((2, 0), (1, 1), (1, 0), (0, 1), (0, 2), (0, 0))
JET_PT_MIN, JET_ETA_MAX = 15.0, 4.7
PILEUP_MEAN, PU_JETS_PER_INTERACTION = 32.0, 0.02
ISR_INDEX, PU_INDEX, PT_CAP = 1.45, 3.5, 1500.0
B_FROM_ISR = 0.02  # gluon splitting: ISR jets that are b jets (every process alike)
SOFT_MET, SOFT_MET_PER_PU = 17.0, 4.2  # unclustered MET resolution per component: sqrt(a^2 + b^2 n_pu), GeV

_NO_NU = (1.2, 3.0)  # true MET (k, scale) without neutrinos from the hard process (b/c decays)
_DY = dict(n_b=(0.975, 0.018, 0.007), n_q=(0.0, 0.0, 0.0), isr=0.55, met=((1.0, *_NO_NU),), negw=0.16, w=26067.89)
_TOP = dict(lowmass=0.0, z=0.0, lm_range=(10.0, 50.0), negw=0.0, w=1.0)
_VV = dict(lowmass=0.0, lm_range=(10.0, 50.0), gamma=(2.2, 38.0), isr=0.7, negw=0.0, w=1.0)
# per process: electron-content probabilities (over CONFIGS); mass model of prompt pairs
# (fraction of Z peak, fraction of 1/m^2 continuum, its range; the rest, and every pair with a
# non-prompt electron, a gamma (k, scale) above 10 GeV); probabilities of 0, 1, 2 b quarks from
# the hard process; Poisson mean of hard light-quark jets given 0, 1, 2 prompt electrons (a W
# that decays to an electron gives no jets); Poisson mean of ISR jets; the true MET as a
# mixture of gammas (weight, k, scale); fraction of negative generator weights, weight magnitude.
PROCESSES = {
    "DYJetsToLL_M-10to50": dict(_DY, config=(0.83, 0.06, 0.09, 0.005, 0.005, 0.01), z=0.0, lowmass=1.0,
                                lm_range=(10.0, 50.0), gamma=(2.2, 38.0), isr=0.45),
    "DYJetsToLL_M-50": dict(_DY, config=(0.85, 0.07, 0.06, 0.005, 0.005, 0.01), z=0.92, lowmass=0.08,
                            lm_range=(50.0, 300.0), gamma=(2.2, 38.0)),
    "ST_t-channel_top": dict(_TOP, config=(0.02, 0.08, 0.40, 0.20, 0.05, 0.25), gamma=(2.0, 35.0),
                             n_b=(0.0, 0.7, 0.3), n_q=(1.0, 1.0, 1.0), isr=1.0, met=((1.0, 2.2, 25.0),)),
    "ST_t-channel_antitop": dict(_TOP, config=(0.02, 0.08, 0.40, 0.20, 0.05, 0.25), gamma=(2.0, 35.0),
                                 n_b=(0.0, 0.7, 0.3), n_q=(1.0, 1.0, 1.0), isr=1.0, met=((1.0, 2.2, 25.0),)),
    "ST_tW_top": dict(_TOP, config=(0.12, 0.10, 0.35, 0.15, 0.03, 0.25), gamma=(2.2, 38.0),
                      n_b=(0.0, 0.9, 0.1), n_q=(1.4, 0.8, 0.1), isr=1.4, met=((1.0, 2.5, 27.0),)),
    "ST_tW_antitop": dict(_TOP, config=(0.12, 0.10, 0.35, 0.15, 0.03, 0.25), gamma=(2.2, 38.0),
                          n_b=(0.0, 0.9, 0.1), n_q=(1.4, 0.8, 0.1), isr=1.4, met=((1.0, 2.5, 27.0),)),
    "TTJets": dict(_TOP, config=(0.12, 0.12, 0.30, 0.16, 0.05, 0.25), gamma=(2.2, 40.0),
                   n_b=(0.0, 0.0, 1.0), n_q=(2.6, 1.6, 0.1), isr=1.8, met=((1.0, 2.5, 30.0),)),
    "WW": dict(_VV, config=(0.25, 0.05, 0.45, 0.05, 0.005, 0.195), z=0.0, gamma=(2.5, 40.0),
               n_b=(0.99, 0.01, 0.0), n_q=(1.5, 1.2, 0.05), met=((0.1, *_NO_NU), (0.9, 2.5, 24.0))),
    "WZ": dict(_VV, config=(0.45, 0.05, 0.35, 0.05, 0.005, 0.095), z=0.55,
               n_b=(0.92, 0.02, 0.06), n_q=(1.5, 1.3, 1.1), met=((0.2, *_NO_NU), (0.8, 2.0, 22.0))),
    "ZZ": dict(_VV, config=(0.60, 0.02, 0.20, 0.03, 0.005, 0.145), z=0.65,
               n_b=(0.88, 0.02, 0.10), n_q=(1.5, 1.3, 1.0), met=((0.75, *_NO_NU), (0.25, 3.0, 22.0))),
}
SIGNAL = ("DYJetsToLL_M-10to50", "DYJetsToLL_M-50")
BACKGROUND = ("ST_t-channel_top", "ST_t-channel_antitop", "ST_tW_top", "ST_tW_antitop", "TTJets", "WW", "WZ",
              "ZZ")
_N_PROMPT = np.asarray([a for a, _ in CONFIGS])
_TWO = np.asarray([a + b == 2 for a, b in CONFIGS])
_PROMPT_PAIR = np.asarray([c == (2, 0) for c in CONFIGS])


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


def _mass_logpdf(m, p, prompt_pair):
    """log density of the pair mass: the process's mass model for prompt pairs, its broad
    gamma part for pairs with a non-prompt electron."""
    broad = _gamma_logpdf(m, *p["gamma"], shift=M_RANGE[0])
    parts = []
    fz, fl = p["z"], p["lowmass"]
    fb = 1.0 - fz - fl
    if fz > 0:
        parts.append(np.log(fz) + _z_logpdf(m))
    if fl > 0:
        parts.append(np.log(fl) + _invsq_logpdf(m, *p["lm_range"]))
    if fb > 1e-12:
        parts.append(np.log(fb) + broad)
    return np.where(prompt_pair, np.logaddexp.reduce(np.stack(parts), axis=0), broad)


def _met_logpdf(x, mixture):
    return np.logaddexp.reduce(np.stack([np.log(w) + _gamma_logpdf(x, k, s) for w, k, s in mixture]), axis=0)


def latent_logpdf(lat: dict, p: dict) -> np.ndarray:
    """log p(latents | process ``p``) of the latents whose distribution depends on the process
    (the number of pile-up interactions, alike for all, cancels in every ratio and is left out)."""
    from scipy.stats import poisson

    cfg = lat["config"]
    with np.errstate(divide="ignore"):
        out = np.log(np.asarray(p["config"]))[cfg] + np.log(np.asarray(p["n_b"]))[lat["n_b"]]
    out = out + np.where(_TWO[cfg], _mass_logpdf(lat["m"], p, _PROMPT_PAIR[cfg]), 0.0)
    out = out + poisson.logpmf(lat["n_q"], np.asarray(p["n_q"])[_N_PROMPT[cfg]])
    out = out + poisson.logpmf(lat["n_isr"], p["isr"])
    return out + _met_logpdf(lat["met"], p["met"])


# ----------------------------------------------------------------- latent sampling
def _sample_mass(rng, n, p, prompt_pair):
    fz, fl = p["z"], p["lowmass"]
    comp = rng.choice(3, size=n, p=[fz, fl, max(0.0, 1.0 - fz - fl)])
    comp = np.where(prompt_pair, comp, 2)
    u = rng.random(n)
    lo, hi = 50.0, M_RANGE[1]
    cz = _cauchy_cdf(lo) + u * (_cauchy_cdf(hi) - _cauchy_cdf(lo))
    mz = Z_MASS + Z_HALF_WIDTH * np.tan(np.pi * (cz - 0.5))
    a, b = p["lm_range"]
    ml = 1.0 / (1.0 / a - u * (1.0 / a - 1.0 / b))
    mb = M_RANGE[0] + rng.gamma(p["gamma"][0], p["gamma"][1], n)
    return np.select([comp == 0, comp == 1], [mz, ml], mb)


def latents(rng, n: int, p: dict) -> dict:
    """``n`` draws of the latents of process ``p`` (arrays by name)."""
    config = rng.choice(len(CONFIGS), size=n, p=np.asarray(p["config"]) / np.sum(p["config"]))
    weights = np.asarray([w for w, _, _ in p["met"]])
    comp = rng.choice(len(p["met"]), size=n, p=weights / weights.sum())
    k, scale = (np.asarray([c[i] for c in p["met"]])[comp] for i in (1, 2))
    return dict(config=config, m=_sample_mass(rng, n, p, _PROMPT_PAIR[config]),
                n_b=rng.choice(3, size=n, p=np.asarray(p["n_b"]) / np.sum(p["n_b"])),
                n_q=rng.poisson(np.asarray(p["n_q"])[_N_PROMPT[config]]), n_isr=rng.poisson(p["isr"], n),
                met=rng.gamma(k, scale), n_pu=rng.poisson(PILEUP_MEAN, n))


# ----------------------------------------------------------------- objects
def _pareto(rng, n, index):
    """pT from a power law ~ pT^-(index + 1) above JET_PT_MIN, truncated at PT_CAP."""
    top = 1.0 - (JET_PT_MIN / PT_CAP) ** index
    return JET_PT_MIN * (1.0 - rng.random(n) * top) ** (-1.0 / index)


def _hadronic_jets(rng, lat):
    """True jets of every event from the hard process, ISR and pile-up: flat arrays with the event index."""
    n = len(lat["config"])
    n_pu_jets = rng.poisson(PU_JETS_PER_INTERACTION * lat["n_pu"])
    parts = []
    for count, kind in ((lat["n_b"], "b"), (lat["n_q"], "q"), (lat["n_isr"], "isr"), (n_pu_jets, "pu")):
        m = int(count.sum())
        ev = np.repeat(np.arange(n), count)
        if kind in ("b", "q"):
            pt, eta = 18.0 + rng.gamma(2.0, 26.0, m), rng.normal(0.0, 1.4, m)
        elif kind == "isr":
            pt, eta = _pareto(rng, m, ISR_INDEX), rng.normal(0.0, 2.0, m)
        else:
            pt, eta = _pareto(rng, m, PU_INDEX), rng.uniform(-JET_ETA_MAX, JET_ETA_MAX, m)
        isb = np.full(m, kind == "b") | ((kind == "isr") & (rng.random(m) < B_FROM_ISR))
        parts.append(dict(ev=ev, pt=pt, eta=eta, phi=rng.uniform(-np.pi, np.pi, m), isb=isb,
                          isr=np.full(m, kind == "isr")))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _response(rng, pt):
    """Measured over true jet pT: a Gaussian core (stochastic and constant terms) and, for 5%
    of the jets, a low tail (neutrinos in heavy-flavour decays, punch-through)."""
    core = 1.0 + rng.normal(size=len(pt)) * np.sqrt(0.9**2 / pt + 0.06**2)
    return np.where(rng.random(len(pt)) < 0.05, core * rng.uniform(0.5, 1.0, len(pt)), core)


def _pair(rng, m, qx, qy):
    """Two massless electrons from a pair of mass m and transverse momentum (qx, qy)."""
    n = len(m)
    qt = np.hypot(qx, qy)
    y = rng.normal(0.0, 1.3, n)
    mt = np.sqrt(m**2 + qt**2)
    E, px, py, pz = mt * np.cosh(y), qx, qy, mt * np.sinh(y)
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


def _electron_props(rng, prompt, pt, eta, n_had):
    """Isolation and impact parameters of one electron slot; ``n_had``: hadronic jets of the event."""
    n = len(prompt)
    zero = rng.random(n) < 0.74 * 0.92 ** n_had  # prompt: nothing else in the mini-isolation cone
    iso = np.where(prompt, np.where(zero, 0.0, rng.exponential(0.025, n)), rng.lognormal(math.log(0.45), 0.9, n))
    chg = iso * np.where(prompt & (rng.random(n) < 0.45), 0.0, rng.uniform(0.3, 1.0, n))
    tail = rng.random(n) < 0.04  # prompt electrons assigned a pile-up vertex, conversions
    sdz = 0.0025 * np.sqrt(1.0 + (eta / 1.6) ** 2)
    sdxy = np.sqrt(0.0024**2 + (0.03 / np.maximum(pt, 5.0)) ** 2)
    dz = np.where(prompt, np.where(tail, rng.laplace(0.0, 0.05, n), rng.normal(0.0, sdz)), rng.laplace(0.0, 0.06, n))
    dxy = np.where(prompt, np.where(tail, rng.laplace(0.0, 0.01, n), rng.normal(0.0, sdxy)),
                   rng.laplace(0.0, 0.03, n))
    return iso, chg, dz, dxy, np.sqrt(dxy**2 + dz**2)


def _electron_slots(rng, lat, qx, qy, n_had):
    """The two electron slots (dicts of arrays with ``exists`` and ``prompt``), sorted by pT."""
    n = len(lat["config"])
    cfg = np.asarray(CONFIGS)[lat["config"]]
    n_prompt, n_e = cfg[:, 0], cfg.sum(axis=1)
    pair = _pair(rng, lat["m"], qx + rng.normal(0.0, 6.0, n), qy + rng.normal(0.0, 6.0, n))
    two = n_e == 2
    slots = []
    for k in (0, 1):  # slot 0 is prompt when there is a prompt electron
        prompt = n_prompt > k
        single = _single(rng, prompt)
        pt, eta, phi = (np.where(two, pair[k][j], single[j]) for j in range(3))
        pt = pt * (1.0 + 0.02 * rng.normal(size=n))
        iso, chg, dz, dxy, ip3d = _electron_props(rng, prompt, pt, eta, n_had)
        slots.append(dict(pt=pt, eta=eta, phi=phi, miniPFRelIso_all=iso, miniPFRelIso_chg=chg, dz=dz, dxy=dxy,
                          ip3d=ip3d, charge=rng.choice(np.array([-1, 1], np.int32), size=n),
                          exists=(n_e > k) & (pt > 5.0) & (np.abs(eta) < 2.5), prompt=prompt))
    # prompt pairs are opposite-sign, up to a charge flip of either electron (more in the endcaps)
    flip = [rng.random(n) < np.where(np.abs(s["eta"]) > 1.48, 0.012, 0.003) for s in slots]
    q1 = np.where(flip[0] ^ flip[1], slots[0]["charge"], -slots[0]["charge"])
    slots[1]["charge"] = np.where(n_prompt >= 2, q1, slots[1]["charge"]).astype(np.int32)
    swap = slots[1]["exists"] & (~slots[0]["exists"] | (slots[1]["pt"] > slots[0]["pt"]))
    a = {f: np.where(swap, slots[1][f], slots[0][f]) for f in slots[0]}
    b = {f: np.where(swap, slots[0][f], slots[1][f]) for f in slots[0]}
    return a, b


def _jagged(slots, fields, dtypes):
    """Awkward arrays per field from flat ``slots`` (dict with ``ev`` sorted) and per-event counts."""
    import awkward as ak

    return {f: ak.unflatten(slots[f].astype(dtypes.get(f, np.float32)), slots["counts"]) for f in fields}


def _electron_arrays(a, b):
    keep = np.stack([a["exists"], b["exists"]], axis=1).ravel()
    flat = {f: np.stack([a[f], b[f]], axis=1).ravel()[keep] for f in a}
    flat["counts"] = a["exists"].astype(np.int64) + b["exists"].astype(np.int64)
    fields = ("pt", "eta", "phi", "miniPFRelIso_all", "miniPFRelIso_chg", "dz", "dxy", "ip3d", "charge")
    return _jagged(flat, fields, {"charge": np.int32})


def _jets_and_met(rng, lat, had, a, b):
    """The stored jets (hadronic ones measured, plus the prompt electrons clustered as jets) and MET."""
    n = len(lat["config"])
    r = _response(rng, had["pt"])
    mis_x = np.bincount(had["ev"], (1.0 - r) * had["pt"] * np.cos(had["phi"]), minlength=n)
    mis_y = np.bincount(had["ev"], (1.0 - r) * had["pt"] * np.sin(had["phi"]), minlength=n)
    ej = [s["exists"] & s["prompt"] for s in (a, b)]
    ev_e = np.concatenate([np.flatnonzero(m) for m in ej])
    pt_e = np.concatenate([s["pt"][m] for s, m in zip((a, b), ej)])
    pt_e = pt_e * rng.lognormal(math.log(1.25), 0.15, len(pt_e))
    eta_e = np.concatenate([s["eta"][m] for s, m in zip((a, b), ej)]) + rng.normal(0.0, 0.01, len(pt_e))
    phi_e = np.concatenate([s["phi"][m] for s, m in zip((a, b), ej)]) + rng.normal(0.0, 0.01, len(pt_e))
    phi_e = np.mod(phi_e + np.pi, 2 * np.pi) - np.pi
    n_had = len(had["pt"])
    tagged = had["isb"] & (np.abs(had["eta"]) < 2.5)  # no b tagging beyond the tracker
    btag = np.where(tagged, rng.beta(5.0, 1.3, n_had), rng.beta(0.7, 10.0, n_had))
    jets = dict(ev=np.concatenate([had["ev"], ev_e]), pt=np.concatenate([r * had["pt"], pt_e]),
                eta=np.concatenate([had["eta"], eta_e]), phi=np.concatenate([had["phi"], phi_e]),
                btagDeepFlavB=np.concatenate([btag, rng.beta(0.5, 30.0, len(pt_e))]))
    stored = (jets["pt"] > JET_PT_MIN) & (np.abs(jets["eta"]) < JET_ETA_MAX)
    jets = {k: v[stored] for k, v in jets.items()}
    order = np.lexsort((-jets["pt"], jets["ev"]))
    jets = {k: v[order] for k, v in jets.items()}
    jets["counts"] = np.bincount(jets["ev"], minlength=n)
    soft = np.sqrt(SOFT_MET**2 + SOFT_MET_PER_PU**2 * lat["n_pu"])
    nu_phi = rng.uniform(-np.pi, np.pi, n)
    met_x = lat["met"] * np.cos(nu_phi) + mis_x + rng.normal(0.0, 1.0, n) * soft
    met_y = lat["met"] * np.sin(nu_phi) + mis_y + rng.normal(0.0, 1.0, n) * soft
    return _jagged(jets, ("pt", "eta", "phi", "btagDeepFlavB"), {}), np.hypot(met_x, met_y).astype(np.float32)


def sample_events(rng, n: int, p: dict):
    """Latents and the NanoAOD arrays of ``n`` events of process ``p``.

    Returns ``(latents, arrays, passing)``: ``arrays`` has ``Electron`` and ``Jet`` (dicts of
    awkward arrays by field), ``MET_pt`` and ``genWeight``; ``passing`` marks the events with at
    least one electron of pT > 10 GeV and |eta| < 2.5 (the default preselection).
    """
    lat = latents(rng, n, p)
    had = _hadronic_jets(rng, lat)
    isr = had["isr"]
    qx = -np.bincount(had["ev"][isr], had["pt"][isr] * np.cos(had["phi"][isr]), minlength=n)
    qy = -np.bincount(had["ev"][isr], had["pt"][isr] * np.sin(had["phi"][isr]), minlength=n)
    a, b = _electron_slots(rng, lat, qx, qy, np.bincount(had["ev"], minlength=n))
    jets, met = _jets_and_met(rng, lat, had, a, b)
    sign = np.where(rng.random(n) < p["negw"], -1.0, 1.0)
    good = ((a["exists"] & (a["pt"] > 10) & (np.abs(a["eta"]) < 2.5)).astype(int)
            + (b["exists"] & (b["pt"] > 10) & (np.abs(b["eta"]) < 2.5)))
    return lat, dict(Electron=_electron_arrays(a, b), Jet=jets, MET_pt=met,
                     genWeight=(sign * p["w"]).astype(np.float32)), good >= 1
