"""The run in TensorBoard: what training publishes (:func:`publish_tensorboard`) and what a
later evaluation adds (:func:`publish_evaluation`), each in folders of its own under
``<run>/tensorboard/``, so that ``tensorboard --logdir results/<task>`` shows one run once:

- ``<stage>/train``, ``<stage>/validation``: the curves of each training stage (Keras'
  TensorBoard callback, :class:`~kerahep.training.context.RunContext`);
- ``evaluation/``: training's report: the test metrics as scalars (``test/roc_auc``), the
  tables as Markdown text, the plots as images;
- ``tensorboard/`` itself: the resolved configuration as HParams;
- ``reevaluation/``: the test metrics of the latest ``scripts.evaluate --run`` of the run's
  own test split, as scalars under the same tags (beside training's in the same charts).
  Its plots and tables are those training logged, so they are not logged again, and a
  later evaluation replaces this folder instead of adding events to it; training's folders
  are never touched. An independent sample (``--data``) logs its scalars in its own
  ``external/<id>/tensorboard/independent_sample/``.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

from .. import artifacts
from ..errors import KerahepError

log = logging.getLogger("kerahep")

#: the folder of ``<output>/tensorboard/`` where an evaluation logs its test metrics, by
#: whether it scored the run's own test split (False) or an independent sample (True)
EVALUATION_FOLDERS = {False: "reevaluation", True: "independent_sample"}


def publish_tensorboard(run_dir: Path, stages=()) -> None:
    """Write the run's report into its TensorBoard logs, replacing what an earlier call wrote.

    ``tensorboard/evaluation``: every finite number of ``metrics.json["test"]`` as a scalar
    (:func:`flat_numbers`: ``test/roc_auc``, ``test/roc_auc_ci/0``), every table the report
    wrote (``<run>/*.csv`` but ``history*.csv``) and the stage table (``stages``: records of
    :attr:`~kerahep.training.context.RunContext.stages`) as Markdown text (``tables/<name>``,
    ``training/stages``), the plots as images (:func:`log_plots_to_tensorboard`).
    ``tensorboard/``: the resolved configuration (``config.json``) as HParams, flattened to
    ``section.key`` (scalars, strings and bools; a sequence as its JSON text).
    """
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return
    from .context import STAGE_COLUMNS, markdown_table, stage_table

    board = run_dir / "tensorboard"
    shutil.rmtree(board / "evaluation", ignore_errors=True)
    for old in board.glob("events.out.tfevents.*"):
        old.unlink()
    metrics = read_json_or_empty(run_dir / "metrics.json")
    writer = tf.summary.create_file_writer(str(board / "evaluation"))
    with writer.as_default():
        for tag, value in flat_numbers(metrics.get("test") or {}, "test"):
            tf.summary.scalar(tag, value, step=0)
        for table in sorted(run_dir.glob("*.csv")):
            if not table.name.startswith("history"):
                tf.summary.text(f"tables/{table.stem}", markdown_table(*read_csv_table(table)), step=0)
        if stages:
            tf.summary.text("training/stages", markdown_table(STAGE_COLUMNS, stage_table(stages)), step=0)
        log_plots_to_tensorboard(run_dir)
    writer.close()
    log_hparams(board, read_json_or_empty(run_dir / "config.json"), trial_id=f"{run_dir.parent.name}/{run_dir.name}")


def log_hparams(board: Path, config: dict, trial_id: str) -> None:
    """The configuration as the HParams session of ``board`` (whose subfolders hold its metrics)."""
    import json

    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = {}
    for key, value in flat_items(config, "."):
        if isinstance(value, (list, tuple)):
            value = json.dumps(value)
        if isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value)):
            hparams[key] = value
    writer = tf.summary.create_file_writer(str(board))
    with writer.as_default():
        hp.hparams(hparams, trial_id=trial_id)
    writer.close()


def flat_items(d: dict, sep: str, prefix: str = ""):
    """``(flattened key, value)`` of the leaves of nested dicts."""
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from flat_items(v, sep, key)
        else:
            yield key, v


def flat_numbers(d, prefix: str, limit: int = 32):
    """``(name, float)`` of every finite number in nested dicts and lists of at most ``limit``
    items (longer lists are curves, drawn in the plots), named by their keys and indices
    joined with ``/``; bools are not numbers."""
    items = d.items() if isinstance(d, dict) else enumerate(d) if len(d) <= limit else ()
    for k, v in items:
        name = f"{prefix}/{k}"
        if isinstance(v, (dict, list, tuple)):
            yield from flat_numbers(v, name, limit)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            yield name, float(v)


def read_json_or_empty(path: Path) -> dict:
    """A JSON object of the run, or ``{}`` when it is missing or damaged (a warning names it)."""
    try:
        value = artifacts.read_json(path)
    except (KerahepError, OSError, ValueError) as exc:
        log.warning("TensorBoard: %s left out (%s)", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


def read_csv_table(path: Path) -> tuple:
    """``(header, rows)`` of a CSV table the report wrote."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    return (rows[0], rows[1:]) if rows else ([], [])


def log_plots_to_tensorboard(run_dir: Path) -> None:
    """Write every plot of the run as an image summary into the default summary writer."""
    plots = sorted((run_dir / "plots").glob("*.png"))
    if not plots:
        return
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    for p in plots:
        img = np.asarray(Image.open(p).convert("RGBA"))[None]
        tf.summary.image(p.stem, img, step=0)


def publish_evaluation(output_dir: Path, test: dict, independent: bool = False) -> Path | None:
    """Log an evaluation's test metrics (every finite number, :func:`flat_numbers`) as scalars
    in ``<output_dir>/tensorboard/<EVALUATION_FOLDERS[independent]>``, replacing what an
    earlier evaluation wrote there (one event per tag, however often it is run); the path,
    or None without TensorFlow."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return None
    folder = Path(output_dir) / "tensorboard" / EVALUATION_FOLDERS[bool(independent)]
    shutil.rmtree(folder, ignore_errors=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for tag, value in flat_numbers(test or {}, "test"):
            tf.summary.scalar(tag, value, step=0)
    writer.close()
    return folder
