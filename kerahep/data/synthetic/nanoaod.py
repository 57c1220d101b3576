"""Synthetic twin of the dy_electron NanoAOD samples.

One ROOT file per CMS sample (``DYJetsToLL_M-50.root``, ``TTJets.root``, ``WW.root``...)
with the NanoAOD schema the reader needs: tree ``Events`` with ``nElectron`` +
``Electron_{pt,eta,phi,miniPFRelIso_all,miniPFRelIso_chg,dz,dxy,ip3d,charge}`` (float32,
charge int32), ``nJet`` + ``Jet_{pt,eta,phi,btagDeepFlavB}``, ``MET_pt``, ``genWeight``
and ``run``/``luminosityBlock``/``event``, ZLIB(1)-compressed like the real files,
written in several baskets. (uproot writes the counters ``nElectron``/``nJet`` as
int32, as Run 3 NanoAOD does; Run 2 files store them as uint32.)

Physics model (:mod:`kerahep.data.synthetic.nanoaod_physics`). Every event has latent
variables drawn from process-dependent distributions: the electron content (two prompt,
prompt + non-prompt, one prompt, one non-prompt, two non-prompt, none), the true pair mass
(Drell-Yan M-50: a Breit-Wigner Z peak with a small 1/m^2 photon continuum; M-10to50: the
1/m^2 low-mass part; top and WW: a broad gamma-shaped spectrum; WZ and ZZ: a mix; pairs
with a non-prompt electron: the broad spectrum), the numbers of b and light quarks from the
hard process (ttbar: two b jets and the jets of hadronic W decays; single top: one b jet and
the spectator quark; dibosons: W/Z -> qq, Z -> bb), the number of initial-state-radiation
jets (more in top events) and the true MET of the neutrinos (ttbar, single top, W decays,
Z -> nunu; none in Drell-Yan); plus the number of pile-up interactions, alike for all.

Everything else is drawn from class-independent distributions given those latents: jets
from the hard process, ISR and pile-up with their own pT spectra and a measured response
with a low tail; every prompt electron also appears in the Jet collection (NanoAOD jets are
not cleaned of leptons), so Drell-Yan events carry about two jets above 30 GeV as in real
files; the pair recoils against the ISR jets; prompt electrons have small impact parameters
and mostly exactly zero ``miniPFRelIso_all``, non-prompt ones are displaced and not
isolated; prompt pairs are opposite-sign up to a charge flip; MET is the true MET plus the
jets' mismeasurement plus an unclustered term that grows with pile-up; electrons outside
pT > 5 GeV, |eta| < 2.5 and jets outside pT > 15 GeV, |eta| < 4.7 are not stored. Because
the classes differ only through the latents, the likelihood ratio of the latents bounds
every classifier of the stored events from above (it sees the true MET, which the 30 GeV
MET resolution hides): its AUC on the events passing the default preselection is
recorded as ``oracle_auc`` in ``twin.json``.

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

from .nanoaod_physics import BACKGROUND, PROCESSES, SIGNAL, latent_logpdf, sample_events

__all__ = ["BACKGROUND", "PROCESSES", "SIGNAL", "make_twin", "twin_params"]

#: generator version: 2 gave Drell-Yan its ISR, pile-up and electron jets, a MET resolution
#: tail, real impact parameters, zero isolation and 95% opposite charge (issue 19)
VERSION = 2
BASKET_EVENTS = 5000


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
        lat, arrays, sel = sample_events(rng, n, PROCESSES[name])
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
    logs = {name: latent_logpdf(lat, PROCESSES[name]) for name in SIGNAL + BACKGROUND}
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
        "oracle_auc_note": "AUC of the latent likelihood ratio (electron content, true pair mass, numbers of "
                           "hard-process b and light quarks and of ISR jets, true MET) on the events passing "
                           "the default preselection "
                           "(>= 1 electron with pt > 10 GeV, |eta| < 2.5); samples weighted equally",
        "oracle_auc_all_events": oracle_all,
        "files": files,
    })
    return files
