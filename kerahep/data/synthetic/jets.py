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

The physics (prongs, radiation, showers, impact parameters, pile-up, labels, the oracle) is in
:mod:`.jets_physics`; this module paints the images and writes the files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...artifacts import atomic_path, read_json, write_json
from .jets_physics import (PIXEL, SIZE, PT_MAX, PT_MIN, PT_SCALE, PT_SHAPE, concat_particles, jet_labels,
                           observable_truth, oracle_auc, pileup, qcd_prongs, radiate, shower, top_prongs)

log = logging.getLogger("kerahep")

UNLABELLED_FILE = "Dataset_Specific_Unlabelled.h5"
LABELLED_FILE = "Dataset_Specific_labelled_full_only_for_2i.h5"
GENERATOR_VERSION = 2
CHANNELS = 8
B_FIELD_K = 0.3 * 3.8 / 2.0  # phi bending per metre of radius and per 1/GeV
PIXEL_RADII = (0.044, 0.073, 0.102)  # barrel pixel layers [m]
ECAL_R, HCAL_R = 1.29, 1.8


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


def generate_jets(n: int, seed: int = 0, batch: int = 128):
    """Yield ``(images, Y, m, pT, latent)`` batches of ``n`` synthetic jets in total."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        b = min(batch, n - done)
        y = (rng.uniform(size=b) < 0.5).astype(np.float32)
        pt0 = np.minimum(PT_MIN + rng.gamma(PT_SHAPE, PT_SCALE, b), PT_MAX)
        top, top_fl, top_g = top_prongs(rng, pt0)
        qcd, qcd_fl, qcd_g = qcd_prongs(rng, pt0)
        sig = y[:, None, None] > 0.5
        prongs = np.where(sig, top, qcd)
        flavour = np.where(sig[..., 0], top_fl, qcd_fl)
        gluon = np.where(sig[..., 0], top_g, qcd_g)
        rad, rad_fl = radiate(rng, prongs, flavour, gluon)
        parts = concat_particles(shower(rng, rad, rad_fl), pileup(rng, b))
        img = _paint(rng, b, parts)
        m, pt = jet_labels(b, parts)
        yield img, y, m.astype(np.float32), pt.astype(np.float32), observable_truth(rad, parts, m, pt)
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
