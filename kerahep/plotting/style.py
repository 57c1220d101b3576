"""The kerahep figure style and writer: the mplhep CMS style, what the data are (the
experiment label), and :func:`save_figure`, which writes every figure atomically as PNG (at
the enclosing :func:`figure_dpi`, ``run.plot_dpi``) and as vector PDF beside it (unless the
enclosing :func:`figure_settings` turn PDFs off: ``run.plot_pdf``).

Every figure says "kerahep", never "CMS", followed by what the data are
(:data:`DATA_LABELS`): inside ``with data_label(kind):``, where the tasks' reports set the
kind from the run's recorded source (:func:`data_kind`). Outside such a block a figure
claims nothing about its data.
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from ..artifacts import atomic_path
from ..errors import KerahepError

_STYLE_SET = False

#: what follows "kerahep" in the experiment label, by kind of data (:func:`data_kind`): the
#: task's synthetic twin is kerahep's own generator, not a detector simulation, and says so
DATA_LABELS = {"synthetic": "Simulation (synthetic twin)", "simulation": "Simulation", "collision": "Collision data"}
_DATA_KIND: contextvars.ContextVar = contextvars.ContextVar("kerahep_data_kind", default=None)
#: resolution of the PNG figures outside a :func:`figure_dpi` block (``run.plot_dpi``'s default)
DEFAULT_DPI = 110
_DPI: contextvars.ContextVar = contextvars.ContextVar("kerahep_plot_dpi", default=DEFAULT_DPI)
#: whether a PNG figure gets its vector PDF beside it (``run.plot_pdf``; outside a block: yes)
_PDF: contextvars.ContextVar = contextvars.ContextVar("kerahep_plot_pdf", default=True)


def use_style():
    """Switch matplotlib to the mplhep CMS style (once); call before drawing a kerahep figure."""
    global _STYLE_SET
    if not _STYLE_SET:
        plt.style.use(hep.style.CMS)
        plt.rcParams.update({"figure.figsize": (8, 7), "font.size": 16})
        _STYLE_SET = True


# ------------------------------------------------------------ writing
@contextlib.contextmanager
def figure_dpi(dpi: int | None):
    """Within the block, PNG figures are written at ``dpi`` dots per inch (None: unchanged)."""
    token = _DPI.set(_DPI.get() if dpi is None else int(dpi))
    try:
        yield
    finally:
        _DPI.reset(token)


@contextlib.contextmanager
def figure_settings(config):
    """The figure settings of a run's configuration for the block (``run.plot_dpi``, and
    ``run.plot_pdf``: whether PNGs get their PDF); the reports of the tasks draw inside it
    (None: the enclosing settings)."""
    run = getattr(config, "run", None)
    pdf = getattr(run, "plot_pdf", None)
    token = _PDF.set(_PDF.get() if pdf is None else bool(pdf))
    try:
        with figure_dpi(getattr(run, "plot_dpi", None)):
            yield
    finally:
        _PDF.reset(token)


def current_dpi() -> int:
    """The resolution PNG figures are written at here (:func:`figure_dpi`, else :data:`DEFAULT_DPI`)."""
    return int(_DPI.get())


def save_figure(fig, path, dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically and close it: the one figure writer of kerahep.

    A ``.png`` is written at ``dpi`` (default: the enclosing :func:`figure_dpi`, else
    :data:`DEFAULT_DPI`), with the same figure as a vector ``.pdf`` beside it (for papers)
    unless the enclosing :func:`figure_settings` say ``run.plot_pdf=false`` (then a PDF left
    there by an earlier drawing is removed, so that a PDF beside a PNG is always its figure);
    any other suffix is written alone in its format. If either file fails, neither is left.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    pdf = path.with_suffix(".pdf") if fmt == "png" and _PDF.get() else None
    try:
        if pdf is not None:
            with atomic_path(pdf) as tmp:
                fig.savefig(tmp, bbox_inches="tight", format="pdf")
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=int(dpi or current_dpi()), bbox_inches="tight", format=fmt)
        except BaseException:
            if pdf is not None:
                pdf.unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
    if fmt == "png" and pdf is None:
        path.with_suffix(".pdf").unlink(missing_ok=True)  # not this figure's any more
    return path


# ------------------------------------------------------------ what the data are
def data_kind(source: str, files_are: str, paths=()) -> str:
    """The kind of data a run's figures show (a key of :data:`DATA_LABELS`).

    ``"synthetic"`` when the run read its task's synthetic twin: its source
    (``TaskData.source``, recorded as ``metrics.json["data"]["source"]``) is
    ``"synthetic"``, or every input file lies beside the ``twin.json`` a twin generator
    writes (a twin given as files). Otherwise ``files_are``: what the task's own files are,
    ``"simulation"`` (simulated samples) or ``"collision"`` (recorded collision data).

    Example:
        >>> data_kind("synthetic", "collision"), data_kind("files", "collision")
        ('synthetic', 'collision')
    """
    if files_are not in DATA_LABELS or files_are == "synthetic":
        raise KerahepError(f"files_are: expected 'simulation' or 'collision', found {files_are!r}")
    paths = [Path(p) for p in paths or ()]
    if source == "synthetic" or (paths and all((p.parent / "twin.json").is_file() for p in paths)):
        return "synthetic"
    return files_are


@contextlib.contextmanager
def data_label(kind: str | None):
    """Within the block, figures label their data as ``DATA_LABELS[kind]`` (None: nothing claimed)."""
    token = _DATA_KIND.set(kind)
    try:
        yield
    finally:
        _DATA_KIND.reset(token)


def label_text(kind: str | None = None) -> str:
    """``"kerahep"`` and what the data are (of ``kind``, else of the enclosing :func:`data_label`)."""
    what = DATA_LABELS.get(_DATA_KIND.get() if kind is None else kind, "")
    return f"kerahep {what}".strip()


def experiment_label(ax, text: str = "", kind: str | None = None):
    """Experiment-style label: "kerahep" (never "CMS") and what the data are (:func:`label_text`)."""
    what = DATA_LABELS.get(_DATA_KIND.get() if kind is None else kind, "")
    try:
        hep.label.exp_label(exp="kerahep", text=" ".join(t for t in (what, text) if t), data=True, ax=ax, loc=0,
                            fontsize=14, rlabel="")
    except Exception:  # noqa: BLE001 - the label is decoration; never fail a plot for it
        pass


def figure_title(fig, title: str | None = None, fontsize: int = 15):
    """The suptitle of a multi-panel figure: ``title`` over the experiment label line."""
    return fig.suptitle("\n".join(t for t in (title, label_text()) if t), fontsize=fontsize)


def distinct_colours(n: int) -> list:
    """``n`` colours, no two alike: tab10 up to 10, tab20 up to 20, else evenly along turbo."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(x) for x in np.linspace(0.05, 0.95, n)]
