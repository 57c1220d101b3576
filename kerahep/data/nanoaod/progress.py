"""Bookkeeping of a preparation: the per-sample counts and the progress bar over files and
events.
"""

from __future__ import annotations

import os


def count_step(rep: dict, n_read: int, n_sel: int, sum_w: float):
    """Add one step's events read, selected, failed and sum of ``genWeight`` to a sample's report."""
    rep["events_read"] += n_read
    rep["selected"] += n_sel
    rep["failed_preselection"] += n_read - n_sel
    rep["sum_genWeight"] += sum_w


class Progress:
    """A rich progress bar over files and events (or nothing)."""

    def __init__(self, enabled: bool, n_files: int, n_events: int):
        self.enabled, self.n_files, self.n_events = enabled, n_files, n_events

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.p.__enter__()
            self.tf = self.p.add_task("files", total=self.n_files)
            self.te = self.p.add_task("events", total=self.n_events)
        return self

    def file(self, sample, path):
        if self.enabled:
            self.p.update(self.tf, description=f"files ({sample}: {os.path.basename(path)})")

    def file_done(self, n: int = 1):
        if self.enabled:
            self.p.advance(self.tf, n)

    def advance(self, n_events: int):
        if self.enabled:
            self.p.advance(self.te, n_events)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False
