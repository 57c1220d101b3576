"""dy_electron event weights: what each event counts for in the loss and in the metrics.

``data.weights`` chooses the physical weight ``w`` of every event:

* ``none`` (default): no weights. Batches are ``(x, y)`` and class balancing is Keras'
  ``class_weight``, exactly as before weights existed.
* ``genWeight``: the generator weight NanoAOD stores (sign and size as produced). It is
  meaningful within one sample only: generators normalise their weights differently, so
  mixing samples needs ``xsec``.
* ``xsec``: ``genWeight * sigma_s * L / W_s`` for an event of sample ``s``: ``sigma_s`` its
  cross-section (pb), ``L`` the integrated luminosity (pb^-1), ``W_s`` the sum of
  ``genWeight`` over every event of the sample the preparation read (before the
  preselection; :class:`kerahep.data.nanoaod.PrepareReport` records it). The weights of
  all events read of a sample sum to ``sigma_s * L``; of its prepared rows, to the expected
  number of selected events. The values come from the user's ``data.samples_file``
  (:func:`read_samples_file`), else from :data:`BUILTIN_TABLE` (the 13 TeV samples the task
  names, each value with its source); ``L`` is ``data.luminosity``, else the samples
  file's, else 1 fb^-1 with the built-in table.

What each split carries as the third element of its batches:

* train: the loss weights: ``w`` with negative weights handled as ``data.negative_weights``
  (:func:`loss_weights`), times the class balance factors of
  :func:`kerahep.evaluation.class_weights` on the sums of those weights (with
  ``training.class_weight``), scaled to mean one over the training events so the loss and
  the learning rate keep their usual scale.
* validation: ``w`` with its sign (the monitored loss and AUC are then unbiased estimates),
  times the same class factors and scale.
* test: ``w`` with its sign, times events / test events of its sample, so the sums of
  weights in the report estimate the whole prepared sample (expected events under ``xsec``).

Negative weights stay in every metric. In the loss they are ``abs`` by default: a term
with a negative weight rewards the wrong prediction, without bound for a flexible network,
so ``keep`` (unbiased) can destabilise training where a sample has many of them, as NLO
samples such as the ``amcatnloFXFX`` Drell-Yan ones do; ``abs`` keeps every event and a
bounded loss, and the bias it brings is measured by the weighted metrics, which keep the
sign. ``zero`` drops those events from the loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError

log = logging.getLogger("kerahep")

WEIGHT_MODES = ("none", "genWeight", "xsec")
NEGATIVE_MODES = ("abs", "keep", "zero")
SAMPLES_FILE_FORMAT = ("luminosity: <integrated luminosity in pb^-1> and samples: {<sample name>: "
                       "<cross-section in pb>, ...}")


#: The built-in cross-sections (pb) of the 13 TeV CMS Monte Carlo samples the task names
#: (:data:`kerahep.data.nanoaod.KNOWN_SAMPLES`, the names the preparation and the synthetic
#: twin give their samples), with the calculation each comes from. They are the theory values
#: CMS analyses of the 2015-2016 13 TeV data commonly normalise these datasets to; kerahep
#: copies them from the references named, which were not re-checked against the documents
#: on this machine (no network): check them against the values of your analysis, and give a
#: samples file (``data.samples_file``) to use others. Samples not listed (Run 3 datasets at
#: 13.6 TeV, other processes) need a samples file.
BUILTIN_TABLE = {
    "DYJetsToLL_M-10to50": (18610.0, "NLO (MadGraph5_aMC@NLO) for the amcatnloFXFX dataset, as in the CMS "
                                     "generator cross-section database (XSDB)"),
    "DYJetsToLL_M-50": (6025.2, "NNLO QCD + NLO EW (FEWZ 3.1), 3 x 2008.4 pb; CMS twiki "
                                "StandardModelCrossSectionsat13TeV"),
    "TTJets": (831.76, "NNLO+NNLL QCD (Top++ 2.0), m_t = 172.5 GeV; LHC Top Working Group, TtbarNNLO"),
    "ST_t-channel_top": (136.02, "NLO QCD (Hathor 2.1), m_t = 172.5 GeV; LHC Top Working Group, SingleTopRefXsec"),
    "ST_t-channel_antitop": (80.95, "NLO QCD (Hathor 2.1), m_t = 172.5 GeV; LHC Top Working Group, "
                                    "SingleTopRefXsec"),
    "ST_tW_top": (35.85, "approximate NNLO (N. Kidonakis), m_t = 172.5 GeV; LHC Top Working Group, "
                         "SingleTopRefXsec"),
    "ST_tW_antitop": (35.85, "approximate NNLO (N. Kidonakis), m_t = 172.5 GeV; LHC Top Working Group, "
                             "SingleTopRefXsec"),
    "WW": (118.7, "NNLO QCD (T. Gehrmann et al., Phys. Rev. Lett. 113 (2014) 212001)"),
    "WZ": (47.13, "NLO QCD (MCFM); CMS twiki StandardModelCrossSectionsat13TeV"),
    "ZZ": (16.523, "NLO QCD (MCFM); CMS twiki StandardModelCrossSectionsat13TeV"),
}

#: {sample name: cross-section in pb} of :data:`BUILTIN_TABLE`
BUILTIN_CROSS_SECTIONS = {name: value for name, (value, _) in BUILTIN_TABLE.items()}
#: integrated luminosity (pb^-1) used with the built-in table when ``data.luminosity`` is not
#: given: 1 fb^-1, so that the weighted sums of the report read as expected events per fb^-1
BUILTIN_LUMINOSITY = 1000.0


def builtin_cross_sections() -> dict:
    """The built-in cross-sections in pb, by sample name (see :data:`BUILTIN_TABLE` for their sources)."""
    return dict(BUILTIN_CROSS_SECTIONS)


@dataclass(frozen=True)
class SamplesTable:
    """Cross-sections and luminosity for ``xsec`` weights.

    Attributes:
        path: the samples file ("" for the built-in table).
        luminosity: integrated luminosity in pb^-1 (None: not given).
        cross_sections: {name as written in the file: cross-section in pb}.
    """

    path: str
    luminosity: float | None
    cross_sections: dict = field(default_factory=dict)

    def lookup(self, sample: str) -> float | None:
        """The cross-section of ``sample``: its name, or a longer dataset name that refers to it
        (``DYJetsToLL_M-50_TuneCUETP8M1_13TeV-amcatnloFXFX-pythia8`` for ``DYJetsToLL_M-50``)."""
        from ...data.nanoaod import known_sample

        if sample in self.cross_sections:
            return self.cross_sections[sample]
        for key, value in self.cross_sections.items():
            if known_sample(key) == sample:
                return value
        return None


def read_samples_file(path) -> SamplesTable:
    """Read a samples file (YAML, or JSON by its ``.json`` suffix)::

        luminosity: 2256.4        # pb^-1
        samples:
          DYJetsToLL_M-50: 1000.0 # pb (write your own values, with their source)
          TTJets: 100.0

    Raises:
        DataError: missing or unreadable file, or not of that form (names the file).
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"a samples file ({SAMPLES_FILE_FORMAT})", "no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - OSError, yaml.YAMLError, json.JSONDecodeError
        raise DataError(path, f"a readable YAML or JSON samples file ({SAMPLES_FILE_FORMAT})",
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("samples"), dict):
        raise DataError(path, f"a mapping with {SAMPLES_FILE_FORMAT}",
                        f"{type(doc).__name__}" + (f" with keys {sorted(doc)[:8]}" if isinstance(doc, dict) else ""))
    extra = sorted(set(doc) - {"luminosity", "samples"})
    if extra:
        raise DataError(path, "only the keys luminosity and samples", f"also {extra[:8]}")
    xsec = {}
    for name, value in doc["samples"].items():
        if not _positive(value):
            raise DataError(path, f"a positive cross-section in pb for sample {name!r}", f"{value!r}")
        xsec[str(name)] = float(value)
    lumi = doc.get("luminosity")
    if lumi is not None and not _positive(lumi):
        raise DataError(path, "luminosity: a positive integrated luminosity in pb^-1", f"{lumi!r}")
    return SamplesTable(str(path), None if lumi is None else float(lumi), xsec)


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0


def cross_sections(samples, samples_file: str = "", luminosity: float = 0.0) -> tuple[dict, float, str]:
    """``({sample: cross-section in pb}, luminosity in pb^-1, source)`` for every name in ``samples``.

    With a samples file, its values only (every sample must be in it: sources are never
    mixed silently); without one, :data:`BUILTIN_TABLE`. The luminosity is ``luminosity``
    when positive (``data.luminosity``), else the samples file's, else (built-in table only)
    :data:`BUILTIN_LUMINOSITY`.

    Raises:
        DataError: the user's file lacks a sample or the luminosity (names the file and the samples).
        ConfigError: no samples file and the built-in table lacks a sample.
    """
    if samples_file:
        table = read_samples_file(samples_file)
        values = {s: table.lookup(s) for s in samples}
    else:
        table = SamplesTable("", BUILTIN_LUMINOSITY, dict(BUILTIN_CROSS_SECTIONS))
        values = {s: BUILTIN_CROSS_SECTIONS.get(s) for s in samples}
    missing = [s for s, v in values.items() if v is None]
    if missing:
        if samples_file:
            raise DataError(samples_file, "a cross-section (pb) under 'samples' for every sample of the dataset",
                            f"none for sample(s) {', '.join(missing)} (it lists {sorted(table.cross_sections)[:10]})")
        raise ConfigError(f"data.weights=xsec: the built-in table has no cross-section for sample(s) "
                          f"{', '.join(missing)} (it has {', '.join(BUILTIN_CROSS_SECTIONS)}): give "
                          f"data.samples_file=FILE ({SAMPLES_FILE_FORMAT})")
    lumi = float(luminosity) if luminosity and luminosity > 0 else table.luminosity
    if lumi is None:
        raise DataError(samples_file, "luminosity: the integrated luminosity in pb^-1 (or data.luminosity=...)",
                        "no luminosity key")
    if not samples_file and not (luminosity and luminosity > 0):
        log.info("data.weights=xsec with the built-in cross-sections and no data.luminosity: weights are "
                 "normalised to %g pb^-1 (the report's weighted sums are expected events per fb^-1)", lumi)
    return {s: float(v) for s, v in values.items()}, float(lumi), samples_file or "built-in"


def prepared_weight_sums(meta: dict) -> dict:
    """{sample: sum of genWeight over every event read}, from the preparation reports of the files."""
    sums: dict = {}
    for m in meta.values():
        for s, rep in (m.get("samples") or {}).items():
            if isinstance(rep, dict) and isinstance(rep.get("sum_genWeight"), (int, float)):
                sums[s] = sums.get(s, 0.0) + float(rep["sum_genWeight"])
    return sums


def event_weights(d, df, samples: np.ndarray, meta: dict, path) -> tuple[np.ndarray | None, dict]:
    """The physical weight of every event (file order) for ``d.weights``, and what it was made of.

    Args:
        d: the run's :class:`~.config.DyElectronData`.
        df: the prepared rows.
        samples: the sample name of each row.
        meta: the preparation reports (:func:`.data.dataset_meta`).
        path: the file named in errors.

    Returns:
        ``(weights or None for none, info)``.

    Raises:
        DataError: no ``genWeight`` column, a sample whose generator weights sum to <= 0.
    """
    info = {"mode": d.weights}
    if d.weights == "none":
        return None, info
    if "genWeight" not in df.columns:
        raise DataError(path, f"a 'genWeight' column (data.weights={d.weights})", f"columns {list(df.columns)[:12]}")
    # float32 as NanoAOD stores it (and as the preparation summed it): a CSV's text reads back exactly
    gw = df["genWeight"].to_numpy(np.float32).astype(np.float64)
    info["negative_weights"] = d.negative_weights
    info["negative_fraction"] = float((gw < 0).mean()) if len(gw) else 0.0
    if d.weights == "genWeight":
        return gw, info
    names = list(dict.fromkeys(samples.tolist()))
    xsec, lumi, source = cross_sections(names, d.samples_file, d.luminosity)
    read = prepared_weight_sums(meta)
    w = np.empty_like(gw)
    per = {}
    for s in names:
        m = samples == s
        if s in read:
            total, how = read[s], "sum over the events read by the preparation (its report)"
        else:
            total, how = float(gw[m].sum()), "sum over the prepared rows (no preparation report records it)"
            log.warning("sample %s: no preparation report gives its sum of generator weights; xsec weights are "
                        "normalised to its prepared rows (the events failing the preselection are not counted)", s)
        if not total > 0:
            raise DataError(path, f"generator weights of sample {s!r} summing to a positive value", f"sum {total:g}")
        w[m] = gw[m] * xsec[s] * lumi / total
        per[s] = {"cross_section_pb": xsec[s], "sum_genWeight": total, "normalisation": how,
                  "sum_of_weights": float(w[m].sum())}
    info.update({"luminosity_pb": lumi, "source": source, "per_sample": per})
    return w, info


def loss_weights(w: np.ndarray, negative: str) -> np.ndarray:
    """``w`` as the loss sees it: ``abs`` |w|, ``zero`` negative weights set to 0, ``keep`` as is."""
    w = np.asarray(w, dtype=np.float64)
    if negative == "abs":
        return np.abs(w)
    if negative == "zero":
        return np.where(w < 0, 0.0, w)
    if negative == "keep":
        return w.copy()
    raise ConfigError(f"data.negative_weights must be one of {', '.join(NEGATIVE_MODES)}, got {negative!r}")


@dataclass
class SplitWeights:
    """Per split, the weights of its events (aligned with the split's indices).

    Attributes:
        train, val, test: the weights batched with each split (see the module docstring).
        class_weight: the class balance factors folded into ``train`` and ``val`` (or None).
        scale: the factor that brings the training weights to mean one.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    class_weight: dict | None = None
    scale: float = 1.0


def split_weights(w: np.ndarray, y: np.ndarray, samples: np.ndarray, parts, negative: str, balance: bool,
                  path) -> SplitWeights:
    """The weights of the train, validation and test events (``parts``) from the physical ``w``.

    Raises:
        DataError: training weights of a class (or all of them) that sum to <= 0.
    """
    from ...evaluation import class_weights

    tr, va, te = (np.asarray(p, dtype=int) for p in parts)
    y = np.asarray(y).astype(int)
    cw, scale = None, 1.0
    train = loss_weights(w[tr], negative)
    if len(tr):
        for c, name in ((0, "background"), (1, "signal")):
            total = train[y[tr] == c].sum()
            if (y[tr] == c).any() and not total > 0:
                raise DataError(path, f"training weights of the {name} events summing to a positive value "
                                      f"(data.negative_weights={negative})", f"sum {total:g}")
        if balance:
            cw = class_weights(y[tr], train)
        factor = _class_factor(y[tr], cw)
        scale = float(len(tr) / (train * factor).sum())
        train = train * factor * scale
    val = w[va] * _class_factor(y[va], cw) * scale
    test = w[te] * _test_scale(samples, te)
    return SplitWeights(train.astype(np.float32), val.astype(np.float32), test.astype(np.float32), cw, scale)


def _class_factor(y, cw) -> np.ndarray:
    if cw is None:
        return np.ones(len(y))
    return np.array([cw.get(int(c), 1.0) for c in range(2)])[np.asarray(y, dtype=int)]


def _test_scale(samples: np.ndarray, te: np.ndarray) -> np.ndarray:
    """Events / test events of each test event's sample (1 where every event is a test event)."""
    names, counts = np.unique(samples, return_counts=True)
    tnames, tcounts = np.unique(samples[te], return_counts=True)
    ratio = dict(zip(tnames, (counts[np.searchsorted(names, tnames)] / tcounts)))
    return np.array([ratio[s] for s in samples[te]], dtype=np.float64)
