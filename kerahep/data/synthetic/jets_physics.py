"""Physics of the jet_ssl twin (:mod:`kerahep.data.synthetic.jets`, whose docstring describes
it): the prongs of top and QCD jets, perturbative radiation, showering into particles with
impact parameters, pile-up, the jets' mass and pT, and the observable truth the oracle AUC
is computed from (:func:`observable_truth`, :func:`oracle_auc`). Particles are dictionaries
of arrays (``jet``, ``pt``, ``eta``, ``phi``, ``species``, ``charge``, ``d0``, ``dz``,
``displaced``, ``pileup``); the image painting lives in the twin module.
"""

from __future__ import annotations

import numpy as np

from .kinematics import boost, breit_wigner, four_vector, invariant_mass, pt_eta_phi, two_body_at_rest

SIZE = 125  # the image: SIZE x SIZE pixels of PIXEL x PIXEL in eta x phi around the jet axis
PIXEL = 0.0174  # eta/phi size of an ECAL crystal
JET_R = 0.8

#: flavour codes of prongs and particles
LIGHT, CHARM, BOTTOM = 0, 1, 2
#: jet pT before out-of-cone losses: PT_MIN + gamma(PT_SHAPE, PT_SCALE), at most PT_MAX [GeV]
PT_MIN, PT_SHAPE, PT_SCALE, PT_MAX = 400.0, 2.0, 71.0, 1000.0
#: heavy flavour in QCD jets: g -> bb, g -> cc, primary b, primary c (fractions of QCD jets)
QCD_FLAVOUR = {"gbb": 0.05, "gcc": 0.05, "b": 0.02, "c": 0.06}
#: per prong, probability of a perturbative emission with z in [0.03, 0.5] (density 1/z)
#: and angle in [0.05, 0.5] (density 1/angle): colour factor C_A for gluons, C_F for quarks
EMIT_QUARK, EMIT_GLUON = 0.3, 0.6
#: QCD jets: fraction with a hard two-prong splitting, and its mass: QCD_MASS[0] + exponential of
#: mean QCD_MASS[1], at most QCD_MASS[2] [GeV]
QCD_TWO_PRONG, QCD_MASS = 0.8, (55.0, 117.0, 320.0)
#: charged particles of a b (c) prong that come from the heavy-hadron decay, and the mean
#: |d0| of those tracks [mm]
HF_DISPLACED = {BOTTOM: (0.35, 0.3), CHARM: (0.25, 0.12)}
#: tracks of any jet from secondary interactions (K0s, Lambda decays, nuclear interactions
#: in the material), and their mean |d0| [mm]
SECONDARY_FRACTION, SECONDARY_D0 = 0.02, 1.0


def top_prongs(rng, pt):
    """Three prongs (b, q, q') of hadronic top decays boosted to ``pt`` along phi = 0.

    The W decays to c s in half of the decays (the charm prong carries displaced tracks).
    """
    n = len(pt)
    m_t = breit_wigner(rng, 172.7, 1.4, n, 150.0, 195.0)
    m_w = breit_wigner(rng, 80.4, 2.1, n, 65.0, 95.0)
    m_b = np.full(n, 4.8)
    b, w = two_body_at_rest(rng, m_t, m_b, m_w)
    q1, q2 = two_body_at_rest(rng, m_w, np.zeros(n), np.zeros(n))
    beta_w = w[:, 1:] / w[:, :1]
    q1, q2 = boost(q1, beta_w), boost(q2, beta_w)
    e_t = np.sqrt(pt ** 2 + m_t ** 2)
    beta_t = np.stack([pt / e_t, np.zeros(n), np.zeros(n)], axis=1)
    prongs = np.stack([boost(b, beta_t), boost(q1, beta_t), boost(q2, beta_t)], axis=1)  # (n, 3, 4)
    flavour = np.zeros((n, 3), np.int64)
    flavour[:, 0] = BOTTOM
    flavour[:, 1] = np.where(rng.uniform(size=n) < 0.5, CHARM, LIGHT)  # W -> cs against W -> ud
    gluon = np.zeros((n, 3), bool)
    return prongs, flavour, gluon


def qcd_prongs(rng, pt):
    """One or two prongs of QCD jets (padded to three, unused prongs have zero energy).

    Gluon-initiated jets (55%) radiate more (``EMIT_GLUON``); heavy flavour per ``QCD_FLAVOUR``.
    """
    n = len(pt)
    prongs = np.zeros((n, 3, 4))
    two = rng.uniform(size=n) < QCD_TWO_PRONG
    z = np.where(two, 0.1 * 5.0 ** rng.uniform(size=n), rng.uniform(0.02, 0.1, n))
    m = np.where(two, np.minimum(QCD_MASS[0] + rng.exponential(QCD_MASS[1], n), QCD_MASS[2]), rng.uniform(8.0, 45.0, n))
    dr = np.minimum(m / (pt * np.sqrt(z * (1 - z))), 1.2)
    ang = rng.uniform(0, 2 * np.pi, n)
    u = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    for k, (frac, off) in enumerate([(1 - z, z * dr), (z, -(1 - z) * dr)]):
        prongs[:, k] = four_vector(frac * pt, off * u[:, 0], off * u[:, 1])
    flavour = np.zeros((n, 3), np.int64)
    r = rng.uniform(size=n)
    f = QCD_FLAVOUR
    c1 = f["gbb"]
    c2 = c1 + f["gcc"]
    c3 = c2 + f["b"]
    c4 = c3 + f["c"]
    flavour[r < c1, :2] = BOTTOM
    flavour[(r >= c1) & (r < c2), :2] = CHARM
    flavour[(r >= c2) & (r < c3), 0] = BOTTOM
    flavour[(r >= c3) & (r < c4), 0] = CHARM
    gluon = np.zeros((n, 3), bool)
    gluon[:, :2] = ((rng.uniform(size=n) < 0.55) & (r >= c4))[:, None]  # heavy flavour: quarks
    return prongs, flavour, gluon


def radiate(rng, prongs, flavour, gluon):
    """Each prong may radiate a gluon (``EMIT_QUARK`` / ``EMIT_GLUON``): appends up to 3 prongs."""
    n, k, _ = prongs.shape
    pt, eta, phi = pt_eta_phi(prongs)
    alive = prongs[..., 0] > 0
    emit = alive & (rng.uniform(size=(n, k)) < np.where(gluon, EMIT_GLUON, EMIT_QUARK))
    z = 0.03 * (0.5 / 0.03) ** rng.uniform(size=(n, k))  # 0.03 .. 0.5, density 1/z
    dr = 0.05 * 10.0 ** rng.uniform(size=(n, k))  # 0.05 .. 0.5, density 1/angle
    ang = rng.uniform(0, 2 * np.pi, (n, k))
    z = np.where(emit, z, 0.0)
    hard = four_vector((1 - z) * pt, eta, phi)
    soft = four_vector(z * pt, eta + dr * np.cos(ang), phi + dr * np.sin(ang))
    soft[~emit] = 0.0
    hard[~alive] = 0.0
    return np.concatenate([hard, soft], axis=1), np.concatenate([flavour, np.zeros_like(flavour)], axis=1)


# ------------------------------------------------------------------ particles
def _d0_resolution(pt):
    """Transverse impact-parameter resolution of a track [mm]: 12 um (+) 90 um / pT[GeV]."""
    return np.hypot(0.012, 0.09 / np.maximum(pt, 0.1))


def _impact(rng, pt, displaced, scale):
    """Measured d0 and dz [mm]: the displacement (exponential of mean ``scale`` where ``displaced``)
    plus the resolution."""
    m = len(pt)
    sig = _d0_resolution(pt)
    true_d0 = np.where(displaced, rng.choice([-1.0, 1.0], m) * rng.exponential(np.maximum(scale, 1e-9)), 0.0)
    true_dz = np.where(displaced, rng.normal(0, 1, m) * rng.exponential(np.maximum(scale, 1e-9)), 0.0)
    return true_d0 + sig * rng.normal(size=m), true_dz + 1.5 * sig * rng.normal(size=m)


def shower(rng, prongs, flavour):
    """Particles of every prong: flat arrays with the jet index of each particle."""
    n, k, _ = prongs.shape
    ppt, peta, pphi = pt_eta_phi(prongs)
    alive = (prongs[..., 0] > 1.0) & (ppt > 1.0)
    jet_idx, prong_idx = np.nonzero(alive)
    ppt, peta, pphi, pfl = ppt[alive], peta[alive], pphi[alive], flavour[alive]
    mult = np.maximum(1, rng.poisson(np.clip(2.0 + 3.0 * np.log(ppt / 5.0), 1.0, 30.0)))
    owner = np.repeat(np.arange(len(ppt)), mult)
    g = rng.gamma(0.7, size=len(owner))
    frac = g / np.bincount(owner, weights=g, minlength=len(ppt))[owner]
    pt = frac * ppt[owner]
    sigma = 0.6 / np.sqrt(ppt[owner]) + 0.02 / np.sqrt(np.maximum(frac, 0.02))
    sigma = np.minimum(sigma, 0.15)
    eta = peta[owner] + rng.normal(0, 1, len(owner)) * sigma
    phi = pphi[owner] + rng.normal(0, 1, len(owner)) * sigma
    r = rng.uniform(size=len(owner))
    species = np.where(r < 0.6, 0, np.where(r < 0.85, 1, 2))  # 0 charged, 1 photon, 2 neutral hadron
    charge = np.where(species == 0, rng.choice([-1.0, 1.0], len(owner)), 0.0)
    fl = pfl[owner]
    u = rng.uniform(size=len(owner))
    p_hf = np.select([fl == BOTTOM, fl == CHARM], [HF_DISPLACED[BOTTOM][0], HF_DISPLACED[CHARM][0]], 0.0)
    s_hf = np.select([fl == BOTTOM, fl == CHARM], [HF_DISPLACED[BOTTOM][1], HF_DISPLACED[CHARM][1]], 0.0)
    heavy = u < p_hf
    secondary = ~heavy & (u < p_hf + SECONDARY_FRACTION)
    displaced = (species == 0) & (heavy | secondary)
    scale = np.where(heavy, s_hf, SECONDARY_D0)
    d0, dz = _impact(rng, pt, displaced, scale)
    return {"jet": jet_idx[owner], "pt": pt, "eta": eta, "phi": phi, "species": species, "charge": charge,
            "displaced": displaced, "d0": d0, "dz": dz, "pileup": np.zeros(len(owner), bool)}


def pileup(rng, n_jets, mean=8.0):
    counts = rng.poisson(mean, n_jets)
    jet = np.repeat(np.arange(n_jets), counts)
    m = len(jet)
    half = SIZE * PIXEL / 2
    r = rng.uniform(size=m)
    species = np.where(r < 0.6, 0, np.where(r < 0.85, 1, 2))
    pt = 0.3 + rng.exponential(0.7, m)
    d0, dz = _impact(rng, pt, np.zeros(m, bool), np.zeros(m))
    return {"jet": jet, "pt": pt, "eta": rng.uniform(-half, half, m),
            "phi": rng.uniform(-half, half, m), "species": species,
            "charge": np.where(species == 0, rng.choice([-1.0, 1.0], m), 0.0),
            "displaced": np.zeros(m, bool), "d0": d0, "dz": dz, "pileup": np.ones(m, bool)}


def concat_particles(a, b):
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def jet_labels(n_jets, p):
    """Mass and pT of the particles within Delta R < 0.8 of the axis (no pile-up)."""
    sel = ~p["pileup"] & (np.hypot(p["eta"], p["phi"]) < JET_R)
    four = four_vector(p["pt"][sel], p["eta"][sel], p["phi"][sel])
    tot = np.zeros((n_jets, 4))
    np.add.at(tot, p["jet"][sel], four)
    return invariant_mass(tot), np.hypot(tot[:, 1], tot[:, 2])


def observable_truth(rad, parts, m, pt):
    """Observable truth for the oracle: the three hardest prongs (after radiation) within the
    jet, their pairwise and total masses and pT shares, jet m and pT, and the tracks' measured
    impact parameters (the number of tracks with |d0| above 3 resolutions and the second
    largest |d0| significance, as a track-counting b tag). The class itself (prong count before
    radiation, flavours) is left out: the oracle sees what the detector could resolve at best,
    not the label."""
    n = len(m)
    ppt, peta, pphi = pt_eta_phi(rad)
    inside = (rad[..., 0] > 0) & (np.hypot(peta, pphi) < JET_R)
    order = np.argsort(np.where(inside, -ppt, np.inf), axis=1)[:, :3]
    top3 = np.take_along_axis(rad * inside[..., None], order[..., None], axis=1)
    t_pt = np.hypot(top3[..., 1], top3[..., 2])
    shares = t_pt / np.maximum(t_pt.sum(1, keepdims=True), 1e-9)
    pair = np.sort(np.stack([invariant_mass(top3[:, a] + top3[:, b]) for a, b in ((0, 1), (0, 2), (1, 2))], 1), axis=1)
    m3 = invariant_mass(top3.sum(1))
    trk = (parts["species"] == 0) & (parts["pt"] > 1.0) & (np.hypot(parts["eta"], parts["phi"]) < JET_R)
    sig = np.abs(parts["d0"][trk]) / _d0_resolution(parts["pt"][trk])
    jet = parts["jet"][trk]
    n_sig = np.bincount(jet[sig > 3.0], minlength=n)
    order = np.lexsort((-sig, jet))  # by jet, then by decreasing significance
    jet_s, sig_s = jet[order], sig[order]
    start = np.searchsorted(jet_s, np.arange(n))
    count = np.bincount(jet_s, minlength=n)
    second = np.zeros(n)
    has2 = count >= 2
    second[has2] = sig_s[start[has2] + 1]
    return np.column_stack([m, pt, pair, m3, shares, n_sig, second])


def oracle_auc(latent, y, seed: int = 0):
    """Cross-validated AUC of a gradient-boosted classifier on the latent truth (None if too few jets)."""
    if len(y) < 200 or len(np.unique(y)) < 2:
        return None
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    clf = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15, learning_rate=0.1, random_state=seed)
    score = cross_val_predict(clf, latent, y.astype(int), cv=3, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, score))
