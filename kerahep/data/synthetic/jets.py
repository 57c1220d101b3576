"""Synthetic twin of the jet_ssl data: boosted top (three prongs) against QCD (one or two prongs).

Writes, in the real layout (:mod:`kerahep.data.jets`):

* ``Dataset_Specific_Unlabelled.h5``: ``jet`` ``(N, 125, 125, 8)`` float32, gzip, chunked
  by a few jets;
* ``Dataset_Specific_labelled_full_only_for_2i.h5``: ``jet`` as above and ``Y``, ``m``,
  ``pT`` float32 stored 2-D ``(N, 1)`` as in the real file;
* ``twin.json``: the parameters, class counts, mass and pT summaries and an oracle AUC.

The physics, jet by jet (the image is 125 x 125 pixels of 0.0174 x 0.0174 in eta x phi
around the jet axis), generator version 2, tuned to the published summaries of the real
files (jet m mean 142, std 51 GeV; pT mean 521, std 106 GeV) and so that the oracle AUC
(about 0.945) sits just above the published SimCLR ResNet-18 AUC (0.936) instead of near one:

* jet pT before out-of-cone losses: 400 GeV + a gamma distribution (shape 2, scale 71 GeV),
  at most 1000 GeV (``PT_MIN``, ``PT_SHAPE``, ``PT_SCALE``, ``PT_MAX``);
* top jets (``Y = 1``): t -> b W, W -> q q' decayed in the rest frames (Breit-Wigner top
  and W masses) and boosted to the jet pT, giving three prongs around the top direction;
  near 400 GeV a decay product often falls outside R = 0.8 (partially merged tops, about a
  fifth below 120 GeV). The b prong carries displaced tracks, and so does the charm prong
  of W -> c s (half of the W decays);
* QCD jets (``Y = 0``): one prong (20%, a collinear splitting of small mass) or two prongs
  (``QCD_TWO_PRONG``, a splitting with momentum fraction z in [0.1, 0.5] and a mass of
  55 GeV + exponential of mean 117 GeV); heavy flavour (``QCD_FLAVOUR``): g -> bb 5%,
  g -> cc 5%, primary b 2%, primary c 6%; 55% of the light jets are gluon jets;
* every prong may radiate a perturbative gluon (z in [0.03, 0.5] with density 1/z, angle
  0.05-0.5 with density 1/angle; probability 0.6 for gluons, 0.3 for quarks: ``EMIT_*``):
  a hard emission gives QCD jets a third prong and top-like masses (about a fifth of QCD
  jets in 140-200 GeV); then each prong showers into particles (charged hadrons 60%,
  photons 25%, neutral hadrons 15%, Dirichlet momentum fractions, angular spread shrinking
  with prong pT), plus a few soft pile-up particles;
* impact parameters: a share of the charged particles of b (c) prongs come from the
  heavy-hadron decay with |d0| exponential of mean 0.3 (0.12) mm (``HF_DISPLACED``), 2% of
  the charged particles of any jet from secondary interactions (K0s, Lambda, material; mean
  1 mm, ``SECONDARY_*``); every track's d0 and dz are smeared by the resolution,
  12 um (+) 90 um / pT[GeV] (dz 1.5 times that);
* deposits: tracks (pT > 1 GeV) in channel 0, pT-weighted measured dz and d0 in channels 1
  and 2 (mm), ECAL (photons, a little from hadrons, 3x3 spread)
  in channel 3, HCAL (hadrons, stochastic resolution, 5x5-pixel towers) in channel 4, and
  hits of charged tracks in the three pixel layers (bending with 1/pT) in channels 5-7.
  Charged deposits in the calorimeters bend with the 3.8 T field.

``m`` and ``pT`` are the invariant mass and transverse momentum of the jet's particles
within Delta R < 0.8 of the axis (pile-up excluded): the jet's own content, as for the real
labels. The oracle AUC is the cross-validated AUC of a gradient-boosted classifier on the
observable truth (the three hardest prongs after radiation, jet m and pT, and the tracks'
measured impact-parameter significances), an estimate of the best a model can do; it is a
Bayes-limit estimate, not the AUC a network reaches on the images of a small twin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...artifacts import atomic_path, read_json, write_json
from .kinematics import boost, breit_wigner, four_vector, invariant_mass, pt_eta_phi, two_body_at_rest

log = logging.getLogger("kerahep")

UNLABELLED_FILE = "Dataset_Specific_Unlabelled.h5"
LABELLED_FILE = "Dataset_Specific_labelled_full_only_for_2i.h5"
GENERATOR_VERSION = 2
SIZE = 125
CHANNELS = 8
PIXEL = 0.0174  # eta/phi size of an ECAL crystal
JET_R = 0.8
B_FIELD_K = 0.3 * 3.8 / 2.0  # phi bending per metre of radius and per 1/GeV
PIXEL_RADII = (0.044, 0.073, 0.102)  # barrel pixel layers [m]
ECAL_R, HCAL_R = 1.29, 1.8


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


def _top_prongs(rng, pt):
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


def _qcd_prongs(rng, pt):
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


def _radiate(rng, prongs, flavour, gluon):
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


def _shower(rng, prongs, flavour):
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


def _pileup(rng, n_jets, mean=8.0):
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


def _cat(a, b):
    return {k: np.concatenate([a[k], b[k]]) for k in a}


# ------------------------------------------------------------------- deposits
def _pix(eta, phi):
    iy = np.floor(eta / PIXEL + SIZE / 2).astype(np.int64)
    ix = np.floor(phi / PIXEL + SIZE / 2).astype(np.int64)
    return iy, ix


def _deposit(img, jet, eta, phi, ch, val):
    iy, ix = _pix(eta, phi)
    ok = (iy >= 0) & (iy < SIZE) & (ix >= 0) & (ix < SIZE) & (val != 0)
    np.add.at(img, (jet[ok], iy[ok], ix[ok], np.broadcast_to(ch, jet.shape)[ok]), val[ok].astype(np.float32))


def _paint(rng, n_jets, p):
    img = np.zeros((n_jets, SIZE, SIZE, CHANNELS), np.float32)
    jet, pt, eta, phi, sp, q = p["jet"], p["pt"], p["eta"], p["phi"], p["species"], p["charge"]
    charged = sp == 0
    # tracks: pT, pT-weighted dz and d0 (mm)
    trk = charged & (pt > 1.0)
    d0, dz = p["d0"], p["dz"]
    tpt = pt * (1 + 0.01 * rng.normal(size=len(pt)))
    _deposit(img, jet[trk], eta[trk], phi[trk], 0, tpt[trk])
    _deposit(img, jet[trk], eta[trk], phi[trk], 1, (tpt * dz)[trk])
    _deposit(img, jet[trk], eta[trk], phi[trk], 2, (tpt * d0)[trk])
    # pixel hits: charged tracks above 0.5 GeV, bent in phi by the field
    hit = charged & (pt > 0.5)
    for layer, radius in enumerate(PIXEL_RADII):
        seen = hit & ~(p["displaced"] & (rng.uniform(size=len(pt)) < 0.15 * (layer + 1)))
        bend = q * B_FIELD_K * radius / np.maximum(pt, 0.1)
        _deposit(img, jet[seen], eta[seen], (phi + bend)[seen], 5 + layer, np.ones(seen.sum()))
    # ECAL: photons (3x3 spread), a MIP or an early shower from hadrons
    e_bend = np.clip(q * B_FIELD_K * ECAL_R / np.maximum(pt, 0.1), -0.3, 0.3)
    h_bend = np.clip(q * B_FIELD_K * HCAL_R / np.maximum(pt, 0.1), -0.4, 0.4)
    early = rng.uniform(size=len(pt)) < 0.2
    ecal = np.where(sp == 1, pt * (1 + 0.03 / np.sqrt(np.maximum(pt, 0.1)) * rng.normal(size=len(pt))),
                    np.where(sp == 0, np.where(early, 0.3 * pt, np.minimum(0.3, pt)), np.where(early, 0.1 * pt, 0.0)))
    ecal = np.maximum(ecal, 0.0)
    share = np.array([[0.04, 0.08, 0.04], [0.08, 0.52, 0.08], [0.04, 0.08, 0.04]])
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            _deposit(img, jet, eta + dy * PIXEL, phi + e_bend + dx * PIXEL, 3, ecal * share[dy + 1, dx + 1])
    # HCAL: the rest of the hadron energy, 100%/sqrt(E), in towers of 5x5 pixels
    had = sp != 1
    hcal = np.where(had, pt - ecal, 0.0)
    hcal = np.maximum(hcal * (1 + 1.0 / np.sqrt(np.maximum(hcal, 0.5)) * rng.normal(size=len(pt))), 0.0)
    hcal = np.where(hcal > 0.5, hcal, 0.0)
    iy, ix = _pix(eta, phi + h_bend)
    ok = (iy >= 0) & (iy < SIZE) & (ix >= 0) & (ix < SIZE) & (hcal > 0)
    towers = np.zeros((n_jets, SIZE // 5, SIZE // 5), np.float32)
    np.add.at(towers, (jet[ok], iy[ok] // 5, ix[ok] // 5), hcal[ok].astype(np.float32))
    img[..., 4] += np.repeat(np.repeat(towers, 5, axis=1), 5, axis=2) / 25.0
    # calorimeter noise: a few cells above threshold
    for ch, thr in ((3, 0.1), (4, 0.02)):
        cnt = rng.poisson(3.0, n_jets)
        j = np.repeat(np.arange(n_jets), cnt)
        img[j, rng.integers(0, SIZE, len(j)), rng.integers(0, SIZE, len(j)), ch] += (
            thr + rng.exponential(thr, len(j))).astype(np.float32)
    return img


def _jet_labels(n_jets, p):
    """Mass and pT of the particles within Delta R < 0.8 of the axis (no pile-up)."""
    sel = ~p["pileup"] & (np.hypot(p["eta"], p["phi"]) < JET_R)
    four = four_vector(p["pt"][sel], p["eta"][sel], p["phi"][sel])
    tot = np.zeros((n_jets, 4))
    np.add.at(tot, p["jet"][sel], four)
    return invariant_mass(tot), np.hypot(tot[:, 1], tot[:, 2])


def _latent(rad, parts, m, pt):
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


def generate_jets(n: int, seed: int = 0, batch: int = 128):
    """Yield ``(images, Y, m, pT, latent)`` batches of ``n`` synthetic jets in total."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        b = min(batch, n - done)
        y = (rng.uniform(size=b) < 0.5).astype(np.float32)
        pt0 = np.minimum(PT_MIN + rng.gamma(PT_SHAPE, PT_SCALE, b), PT_MAX)
        top, top_fl, top_g = _top_prongs(rng, pt0)
        qcd, qcd_fl, qcd_g = _qcd_prongs(rng, pt0)
        sig = y[:, None, None] > 0.5
        prongs = np.where(sig, top, qcd)
        flavour = np.where(sig[..., 0], top_fl, qcd_fl)
        gluon = np.where(sig[..., 0], top_g, qcd_g)
        rad, rad_fl = _radiate(rng, prongs, flavour, gluon)
        parts = _cat(_shower(rng, rad, rad_fl), _pileup(rng, b))
        img = _paint(rng, b, parts)
        m, pt = _jet_labels(b, parts)
        yield img, y, m.astype(np.float32), pt.astype(np.float32), _latent(rad, parts, m, pt)
        done += b


# ---------------------------------------------------------------------- files
def _write(path, n, seed, labelled, chunk_rows, compression_level, progress):
    import h5py

    latents, labels = [], []
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            jet = f.create_dataset("jet", shape=(n, SIZE, SIZE, CHANNELS), dtype="float32",
                                   chunks=(min(chunk_rows, max(n, 1)), SIZE, SIZE, CHANNELS),
                                   compression="gzip", compression_opts=compression_level)
            if labelled:
                ds = {k: f.create_dataset(k, shape=(n, 1), dtype="float32") for k in ("Y", "m", "pT")}
            start = 0
            batch = max(chunk_rows, 128 // chunk_rows * chunk_rows)  # whole chunks per write
            gen = generate_jets(n, seed=seed, batch=batch)
            if progress:
                from rich.progress import track

                total = -(-n // batch)
                gen = track(gen, total=total, description=f"writing {Path(path).name}")
            for img, y, m, pt, lat in gen:
                stop = start + len(img)
                jet[start:stop] = img
                if labelled:
                    ds["Y"][start:stop, 0] = y
                    ds["m"][start:stop, 0] = m
                    ds["pT"][start:stop, 0] = pt
                latents.append(lat)
                labels.append((y, m, pt))
                start = stop
    y = np.concatenate([b[0] for b in labels]) if labels else np.zeros(0)
    m = np.concatenate([b[1] for b in labels]) if labels else np.zeros(0)
    pt = np.concatenate([b[2] for b in labels]) if labels else np.zeros(0)
    return (np.concatenate(latents) if latents else np.zeros((0, 11))), y, m, pt


def write_jet_file(path, n: int, seed=0, labelled: bool = False, chunk_rows: int = 4,
                   compression_level: int = 4, progress: bool = False) -> Path:
    """Write one jet file of ``n`` synthetic jets (``jet``, plus ``Y``, ``m``, ``pT`` if ``labelled``).

    Example:
        >>> write_jet_file("bench/unlabelled.h5", 256, seed=1)
        PosixPath('bench/unlabelled.h5')
    """
    _write(Path(path), int(n), seed, labelled, int(chunk_rows), int(compression_level), progress)
    return Path(path)


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


def twin_params(n_unlabelled: int, n_labelled: int, seed: int, chunk_rows: int, compression_level: int) -> dict:
    return {"generator": "kerahep.data.synthetic.jets", "version": GENERATOR_VERSION,
            "n_unlabelled": int(n_unlabelled), "n_labelled": int(n_labelled), "seed": int(seed),
            "chunk_rows": int(chunk_rows), "compression": "gzip", "compression_level": int(compression_level),
            "image": [SIZE, SIZE, CHANNELS], "pixel": PIXEL}


def write_twin(out_dir, n_unlabelled: int = 3000, n_labelled: int = 1500, seed: int = 0, chunk_rows: int = 4,
               compression_level: int = 4, progress: bool = False, force: bool = False) -> dict:
    """Write the two jet files and ``twin.json`` into ``out_dir`` (unless already there).

    Args:
        out_dir: destination folder.
        n_unlabelled: jets in ``Dataset_Specific_Unlabelled.h5``.
        n_labelled: jets in ``Dataset_Specific_labelled_full_only_for_2i.h5``.
        seed: the twin is a function of the seed and the sizes.
        chunk_rows: jets per HDF5 chunk of ``jet``.
        compression_level: gzip level.
        progress: show a progress bar.
        force: write even if a twin with the same parameters exists.

    Returns:
        The contents of ``twin.json`` (parameters, file names, class counts, mass and pT
        summaries, ``oracle_auc``).

    Example:
        >>> info = write_twin("data/synthetic/jet_ssl", n_unlabelled=64, n_labelled=64)
        >>> sorted(info["files"])
        ['labelled', 'unlabelled']
    """
    out = Path(out_dir)
    params = twin_params(n_unlabelled, n_labelled, seed, chunk_rows, compression_level)
    meta_path = out / "twin.json"
    files = {"unlabelled": UNLABELLED_FILE, "labelled": LABELLED_FILE}
    if not force and meta_path.exists() and all((out / f).exists() for f in files.values()):
        try:
            meta = read_json(meta_path)
        except ValueError:
            meta = {}
        if meta.get("params") == params:
            return meta
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        log.info("writing the jet_ssl synthetic twin (%d unlabelled, %d labelled jets) to %s",
                 n_unlabelled, n_labelled, out)
    lat_u, y_u, _, _ = _write(out / UNLABELLED_FILE, n_unlabelled, [seed, 0], False, chunk_rows,
                              compression_level, progress)
    lat_l, y_l, m_l, pt_l = _write(out / LABELLED_FILE, n_labelled, [seed, 1], True, chunk_rows,
                                   compression_level, progress)
    lat = np.concatenate([lat_u, lat_l])
    y_all = np.concatenate([y_u, y_l])
    meta = {
        "params": params,
        "files": files,
        "channels": ["track_pt", "track_dz_weighted", "track_d0_weighted", "ecal", "hcal",
                     "pixel_layer1", "pixel_layer2", "pixel_layer3"],
        "labelled_class_counts": {"qcd": int((y_l == 0).sum()), "top": int((y_l == 1).sum())},
        "unlabelled_class_counts_hidden": {"qcd": int((y_u == 0).sum()), "top": int((y_u == 1).sum())},
        "m": {"mean": float(np.mean(m_l)) if len(m_l) else None, "std": float(np.std(m_l)) if len(m_l) else None},
        "pT": {"mean": float(np.mean(pt_l)) if len(pt_l) else None,
               "std": float(np.std(pt_l)) if len(pt_l) else None},
        "oracle_auc": oracle_auc(lat, y_all, seed=seed),
        "oracle_method": "3-fold cross-validated HistGradientBoosting on the observable truth of all jets "
                         "(masses and pT shares of the three hardest prongs inside the jet, jet m and pT, "
                         "tracks with |d0| above 3 resolutions and the second largest d0 significance): "
                         "an estimate of the best achievable AUC",
    }
    write_json(meta_path, meta)
    return meta
