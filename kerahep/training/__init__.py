"""Training: ``train(config)`` runs one task end to end; ``evaluate_run(run_dir)`` reproduces
its report from the saved run.

One concern per module:

* :mod:`~kerahep.training.trainer`: :func:`train` and :class:`RunResult`;
* :mod:`~kerahep.training.evaluate`: :func:`evaluate_run` and :func:`resolve_run`;
* :mod:`~kerahep.training.context`: :class:`RunContext`, what a task's ``fit`` sees, and its
  :meth:`RunContext.fit` for one stage;
* :mod:`~kerahep.training.rundir`: run directories, resume and stage histories;
* :mod:`~kerahep.training.callbacks`: kerahep's Keras callbacks;
* :mod:`~kerahep.training.distribution`: devices, precision, strategies.

Optimizers and schedules sit below the tasks, in :mod:`kerahep.optimizers`; they are
re-exported here for one release (old import path).
"""

from ..optimizers import make_optimizer, make_schedule  # noqa: F401 - old import path, one release
from .context import RunContext, TrainingDiverged  # noqa: F401
from .distribution import (  # noqa: F401
    Strategy, accelerator_present, full_batches, is_chief, join_processes, make_strategy, resolve_precision,
)
from .evaluate import evaluate_run, resolve_run  # noqa: F401
from .rundir import latest_run, make_run_dir, new_run_id, resume_config, task_dir  # noqa: F401
from .trainer import RunResult, set_seed, to_plain, train  # noqa: F401
