"""Every command-line flag of every command is passed through the command line by a test
(issue 17), and its effect is asserted there, not only the exit status.

:data:`FLAG_TESTS` names, for each command and flag, a test that passes the flag through the
command line: ``kerahep COMMAND`` in-process (:func:`mistakes.cli`, ``kerahep.commands.main``),
``main(argv)`` of the command's module, or ``python -m scripts.<module>``.
:func:`test_every_flag_is_passed_by_the_test_the_table_names` reads every parser's flags and
fails on a flag missing from the table, on a stale entry, and on an entry whose test (or the
module-level helpers and constants it uses) does not name both the flag and the command.

The flags no other test passes are passed here: ``train --seed/--precision/--strategy``
(three toy runs trained through the command line, shared by the module), ``--synthetic``,
``--backend`` (a backend other than the one Keras was imported with is refused),
``prepare --seed/--max-events/--format/--preset/--dask/--scheduler``, ``predict --task/
--output-dir/--embedding/--batch-size/--chunk-size/--dask/--scheduler``, ``--unsafe-load`` of
evaluate, predict and export, and ``--verbose`` of every command.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from conftest import require_backend  # noqa: E402
from helpers import retracing_warnings_shown  # noqa: E402
from mistakes import assert_one_line_error, cli  # noqa: E402

from kerahep.commands import COMMANDS  # noqa: E402

HERE = "test_cli_flags.py"
# --------------------------------------------------------------------------- the table
#: (command, flag) -> "file::test" of a test that passes the flag through the command line
FLAG_TESTS = {
    ("prepare", "--task"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("prepare", "--signal"): "test_cli.py::test_real_nanoaod_prepare_train_evaluate",
    ("prepare", "--background"): "test_cli.py::test_real_nanoaod_prepare_train_evaluate",
    ("prepare", "--max-events"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--out"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("prepare", "--format"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--synthetic"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("prepare", "--preset"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--set"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("prepare", "--seed"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--dask"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--scheduler"): f"{HERE}::test_prepare_seed_cap_format_preset_and_dask",
    ("prepare", "--quiet"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("prepare", "--verbose"): f"{HERE}::test_verbose_of_every_command_lets_tensorflow_warnings_through",
    ("train", "--task"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--config"): "test_cli.py::test_config_file_reproduces_a_run_configuration_with_set_on_top",
    ("train", "--preset"): "test_task_runs_jax.py::test_train_on_jax_then_evaluate_reproduces_the_report_and_torch_agrees",
    ("train", "--data"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--synthetic"): f"{HERE}::test_train_synthetic_uses_the_twin_not_the_given_files",
    ("train", "--epochs"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--batch-size"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--set"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--seed"): f"{HERE}::test_train_seed_precision_and_strategy",
    ("train", "--precision"): f"{HERE}::test_train_seed_precision_and_strategy",
    ("train", "--backend"): f"{HERE}::test_backend_other_than_the_imported_one_is_refused",
    ("train", "--strategy"): f"{HERE}::test_train_seed_precision_and_strategy",
    ("train", "--output-dir"): "test_user_mistakes.py::test_output_dir_that_is_a_file_or_not_writable",
    ("train", "--run-id"): "test_resume_publication.py::test_killed_between_metrics_and_latest_then_resume_publishes_without_training",
    ("train", "--resume"): "test_resume_publication.py::test_killed_between_metrics_and_latest_then_resume_publishes_without_training",
    ("train", "--quiet"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("train", "--verbose"): f"{HERE}::test_verbose_of_every_command_lets_tensorflow_warnings_through",
    ("train", "--list"): "test_cli.py::test_list_shows_every_task_with_its_presets_and_smoke",
    ("evaluate", "--run"): "test_run_confinement.py::test_no_data_check_flag_evaluates_a_run_without_fingerprint",
    ("evaluate", "--task"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("evaluate", "--output-dir"): "test_user_mistakes.py::test_output_dir_that_is_a_file_or_not_writable",
    ("evaluate", "--unsafe-load"): f"{HERE}::test_unsafe_load_runs_the_code_of_a_trusted_model",
    ("evaluate", "--max-model-size"): "test_model_limits.py::test_commands_take_max_model_size",
    ("evaluate", "--verbose"): "test_quiet_terminal.py::test_verbose_evaluate_shows_what_tensorflow_prints_on_import",
    ("evaluate", "--data"): "test_cli.py::test_synthetic_prepare_train_evaluate",
    ("evaluate", "--backend"): f"{HERE}::test_backend_other_than_the_imported_one_is_refused",
    ("evaluate", "--no-data-check"): "test_run_confinement.py::test_no_data_check_flag_evaluates_a_run_without_fingerprint",
    ("predict", "--run"): "test_prediction.py::test_the_command_line_scores_into_the_run_by_default",
    ("predict", "--task"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--output-dir"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--unsafe-load"): f"{HERE}::test_unsafe_load_runs_the_code_of_a_trusted_model",
    ("predict", "--max-model-size"): "test_model_limits.py::test_commands_take_max_model_size",
    ("predict", "--verbose"): f"{HERE}::test_verbose_of_every_command_lets_tensorflow_warnings_through",
    ("predict", "--out"): "test_prediction.py::test_a_damaged_run_config_is_one_error_naming_it",
    ("predict", "--format"): "test_prediction.py::test_the_command_line_scores_into_the_run_by_default",
    ("predict", "--embedding"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--batch-size"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--chunk-size"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--dask"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--scheduler"): f"{HERE}::test_predict_task_batches_embedding_and_dask",
    ("predict", "--backend"): f"{HERE}::test_backend_other_than_the_imported_one_is_refused",
    ("export", "--run"): "test_export_confinement.py::test_no_data_check_flag_exports_a_run_without_fingerprint",
    ("export", "--task"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--output-dir"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--unsafe-load"): f"{HERE}::test_unsafe_load_runs_the_code_of_a_trusted_model",
    ("export", "--max-model-size"): "test_model_limits.py::test_commands_take_max_model_size",
    ("export", "--verbose"): f"{HERE}::test_verbose_of_every_command_lets_tensorflow_warnings_through",
    ("export", "--format"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--out"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--events"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--atol"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--no-data-check"): "test_export_confinement.py::test_no_data_check_flag_exports_a_run_without_fingerprint",
    ("export", "--opset"): "test_export.py::test_command_line_exports_and_summarises",
    ("export", "--route"): "test_export_confinement.py::test_no_data_check_flag_exports_a_run_without_fingerprint",
    ("export", "--precision"): "test_export.py::test_dy_electron_hls4ml_emulation_scores_the_test_events",
    ("export", "--reuse-factor"): "test_export.py::test_dy_electron_hls4ml_emulation_scores_the_test_events",
    ("export", "--io-type"): "test_export.py::test_dy_electron_hls4ml_emulation_scores_the_test_events",
    ("export", "--hls-backend"): "test_export.py::test_dy_electron_hls4ml_emulation_scores_the_test_events",
    ("export", "--hls-events"): "test_export.py::test_dy_electron_hls4ml_emulation_scores_the_test_events",
    ("compare-variants", "--output-dir"): "test_electron_photon_task.py::test_compare_variants_command_prints_and_writes_only_where_told",
    ("compare-variants", "--out"): "test_electron_photon_task.py::test_compare_variants_command_prints_and_writes_only_where_told",
    ("compare-variants", "--verbose"): f"{HERE}::test_verbose_of_every_command_lets_tensorflow_warnings_through",
    ("benchmark", "--task"): "test_benchmark_twins.py::test_quick_report_on_small_twins",
    ("benchmark", "--quick"): "test_benchmark_twins.py::test_quick_report_on_small_twins",
    ("benchmark", "--out"): "test_benchmark_twins.py::test_quick_report_on_small_twins",
    ("benchmark", "--workdir"): "test_benchmark_twins.py::test_quick_report_on_small_twins",
    ("benchmark", "--verbose"): "test_benchmark_twins.py::test_quick_report_on_small_twins",
}


def parser_flags() -> set:
    """``{(command, flag)}`` of every ``--flag`` of every command's parser (``--help`` aside)."""
    flags = set()
    for name, module in COMMANDS.items():
        p = importlib.import_module(f"kerahep.commands.{module}").parser()
        # argparse has no public list of a parser's options; its private ``_actions`` is read
        # here only, so that a new flag without a test in FLAG_TESTS fails this test
        for action in p._actions:
            flags |= {(name, o) for o in action.option_strings if o.startswith("--") and o != "--help"}
    return flags


def _module(path: Path):
    """``(tests by name, module-level definitions by name, {name: commands it imports})``."""
    tree = ast.parse(path.read_text())
    top, aliases = {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                top.update({n.id: node for n in ast.walk(target) if isinstance(n, ast.Name)})
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases.setdefault(a.asname or a.name, set()).update(_commands_of_import(node.module, a.name))
    return top, aliases


def _commands_of_import(module: str, name: str) -> set:
    return {cmd for cmd, mod in COMMANDS.items()
            if {module, f"{module}.{name}"} & {f"scripts.{mod}", f"kerahep.commands.{mod}"}}


def _reached(node, top) -> list:
    """``node`` and the module-level definitions it uses, transitively."""
    seen, todo = {}, [node]
    while todo:
        n = todo.pop()
        if id(n) not in seen:
            seen[id(n)] = n
            todo += [top[s.id] for s in ast.walk(n) if isinstance(s, ast.Name) and s.id in top]
    return list(seen.values())


def _passes(path: Path, test: str, command: str, flag: str) -> str | None:
    """None when ``test`` of ``path`` names ``flag`` and ``command``; else what is missing."""
    top, aliases = _module(path)
    if not isinstance(top.get(test), ast.FunctionDef):
        return f"{path.name} has no test {test}"
    nodes = [s for n in _reached(top[test], top) for s in ast.walk(n)]
    strings = {s.value for s in nodes if isinstance(s, ast.Constant) and isinstance(s.value, str)}
    names = {s.id for s in nodes if isinstance(s, ast.Name)}
    commands = {c for c, mod in COMMANDS.items() if {c, f"scripts.{mod}"} & strings}
    commands |= {c for n in names for c in aliases.get(n, ())}
    commands |= {c for s in nodes if isinstance(s, ast.ImportFrom) and s.module
                 for a in s.names for c in _commands_of_import(s.module, a.name)}
    if not any(s == flag or s.startswith(flag + "=") for s in strings):
        return f"{path.name}::{test} does not pass {flag}"
    return None if command in commands else f"{path.name}::{test} does not run {command}"


def test_every_flag_is_passed_by_the_test_the_table_names():
    flags = parser_flags()
    assert sorted(flags - set(FLAG_TESTS)) == [], "flags without a test in FLAG_TESTS"
    assert sorted(set(FLAG_TESTS) - flags) == [], "FLAG_TESTS entries of flags no parser has"
    problems = [why for (cmd, flag), where in sorted(FLAG_TESTS.items())
                for why in [_passes(TESTS / where.split("::")[0], where.split("::")[1], cmd, flag)] if why]
    assert problems == []


# --------------------------------------------------------------------------- the runs
#: the toy runs the module trains through the command line, in this order: run id -> its flags
#: (``b`` repeats ``a``, and is LATEST)
TOY_RUNS = {"c": ["--seed", "12", "--precision", "mixed_bfloat16", "--strategy", "mirrored"],
            "a": ["--seed", "11", "--precision", "float32", "--strategy", "none"],
            "b": ["--seed", "11", "--precision", "float32", "--strategy", "none"]}


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    """``results/`` with the toy runs of :data:`TOY_RUNS`."""
    root = tmp_path_factory.mktemp("flags")
    for run_id, flags in TOY_RUNS.items():
        rc, _, err = cli("train", "--task", "toy", "--output-dir", root / "results", "--run-id", run_id, "--quiet",
                         *flags)
        assert rc == 0, err[-3000:]
    return root / "results"


@pytest.fixture(scope="module")
def flipped_run(toy_results, tmp_path_factory):
    """A copy of run ``a`` whose model ends in a Lambda layer ``1 - score``: code that runs
    only with ``--unsafe-load``."""
    run = Path(shutil.copytree(toy_results / "toy" / "a", tmp_path_factory.mktemp("flipped") / "a"))
    base = keras.saving.load_model(run / "model.keras")
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Lambda(lambda t: 1.0 - t)(base(inp))).save(run / "model.keras")
    return run


@pytest.fixture(scope="module")
def scheduler():
    """A running Dask scheduler (threads in this process) and its address."""
    require_backend("distributed", "dask_awkward")
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(5)
    x = {"a": rng.normal(size=(25, 4)).astype(np.float32), "b": rng.normal(size=(7, 4)).astype(np.float32)}
    for name, a in x.items():
        np.save(tmp_path / f"{name}.npy", a)
    return tmp_path, x


# --------------------------------------------------------------------------- train
def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _test_signal_events(seed: int) -> int:
    """Signal events in the toy task's test split (rows 510-599 of 600), drawn as the task draws them."""
    return int(np.random.default_rng(seed).integers(0, 2, 600)[510:].sum())


def test_train_seed_precision_and_strategy(toy_results):
    runs = {r: toy_results / "toy" / r for r in TOY_RUNS}
    cfg = {r: _json(d / "config.json") for r, d in runs.items()}
    env = {r: _json(d / "metrics.json")["environment"] for r, d in runs.items()}
    test = {r: _json(d / "metrics.json")["test"] for r, d in runs.items()}
    assert [cfg[r]["run"]["seed"] for r in "abc"] == [11, 11, 12] == [env[r]["seed"] for r in "abc"]
    # --seed: the data are drawn from it, and the same seed gives the same run
    for r, seed in (("a", 11), ("c", 12)):
        assert test[r]["classification_report"]["signal"]["support"] == _test_signal_events(seed)
    assert _test_signal_events(11) != _test_signal_events(12)
    assert test["b"] == test["a"]
    wa, wb = (keras.saving.load_model(runs[r] / "model.keras").get_weights() for r in "ab")
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))
    # --precision: recorded and the dtype policy of the saved layers (the float32 score layer aside)
    assert (cfg["a"]["training"]["precision"], env["a"]["precision"]) == ("float32", "float32")
    assert (cfg["c"]["training"]["precision"], env["c"]["precision"]) == ("mixed_bfloat16", "mixed_bfloat16")
    policies = {r: [la.dtype_policy.name for la in keras.saving.load_model(runs[r] / "model.keras").layers[1:]]
                for r in "ac"}
    assert policies == {"a": ["float32"] * 3, "c": ["mixed_bfloat16", "mixed_bfloat16", "float32"]}
    # --strategy: the strategy the run was trained under
    assert (cfg["a"]["run"]["strategy"], env["a"]["strategy"]) == ("none", "none")
    import tensorflow as tf

    replicas = len(tf.config.list_logical_devices("GPU")) or 1  # mirrored over the GPUs, else the CPU
    assert (cfg["c"]["run"]["strategy"], env["c"]["strategy"], env["c"]["replicas"]) == ("mirrored", "mirrored",
                                                                                         replicas)


def test_train_synthetic_uses_the_twin_not_the_given_files(workdir):
    (workdir / "adir.csv").mkdir()  # not readable as a file: reading it is an error naming it
    (workdir / "afile").write_text("x")  # a data_dir that is a file: making the twin there is an error naming it
    argv = ["train", "--task", "dy_electron", "--data", "adir.csv", "--set", "data.data_dir='afile'", "--quiet"]
    rc, _, err = cli(*argv)
    assert_one_line_error(rc, err, "adir.csv")
    rc, _, err = cli(*argv, "--synthetic")
    line = assert_one_line_error(rc, err, "afile", "data.data_dir")
    assert "adir.csv" not in line  # the given file is not read at all
    assert (workdir / "afile").read_text() == "x" and not any((workdir / "adir.csv").iterdir())


def test_backend_other_than_the_imported_one_is_refused(tmp_path):
    from kerahep import commands

    assert keras.backend.backend() == "tensorflow"
    for argv in (["train", "--task", "toy", "--output-dir", tmp_path / "r"], ["evaluate", "--run", tmp_path],
                 ["predict", "--run", tmp_path, tmp_path / "x.npy"]):
        with pytest.raises(SystemExit, match="--backend jax: Keras is already imported with the tensorflow"):
            commands.main([str(a) for a in argv] + ["--backend", "jax"])
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


# --------------------------------------------------------------------------- prepare
def _events(frame) -> pd.DataFrame:
    """The prepared rows in one order (sample, then entry in its file)."""
    return frame.sort_values(["sample", "file", "entry"]).reset_index(drop=True)


def test_prepare_seed_cap_format_preset_and_dask(workdir, scheduler):
    from kerahep.registry import get_task
    from kerahep.tasks.dy_electron import feature_spec

    twin = workdir / "data" / "synthetic" / "dy_electron" / "nanoaod" / "twin.json"
    base = ["prepare", "--task", "dy_electron", "--synthetic", "--set", "data.synthetic_events=200",
            "--max-events", "60", "--preset", "seed", "--quiet"]
    rc, _, err = cli(*base, "--seed", "5", "--format", "parquet", "--out", "a.data")
    assert rc == 0, err[-3000:]
    report = _json(workdir / "a.data.report.json")
    assert Path("a.data").read_bytes()[:4] == b"PAR1" and report["fmt"] == "parquet"  # --format, not the suffix
    a = pd.read_parquet("a.data")
    assert _json(twin)["params"]["seed"] == 5 and _json(twin)["params"]["n_events_per_sample"] == 200
    assert {s["events_read"] for s in report["samples"].values()} == {60}  # --max-events per sample
    assert report["events_read"] == 60 * len(report["samples"]) == 600
    spec = feature_spec(get_task("dy_electron").preset("seed").data)
    assert report["spec"]["preset"] == "seed" and list(a.columns) == spec.output_columns
    assert "m_ee" not in a.columns  # a feature of the physics preset only
    done = scheduler.transition_counter
    rc, _, err = cli(*base, "--seed", "5", "--out", "b.csv", "--dask", "--scheduler", scheduler.address)
    assert rc == 0, err[-3000:]
    assert _json(workdir / "b.csv.report.json")["engine"] == "dask" and scheduler.transition_counter > done
    # the same seed: the same events, also on the cluster
    pd.testing.assert_frame_equal(_events(pd.read_csv("b.csv")), _events(a), check_dtype=False, rtol=1e-6)
    rc, _, err = cli(*base, "--seed", "6", "--out", "c.csv")
    assert rc == 0, err[-3000:]
    c = _events(pd.read_csv("c.csv"))
    assert _json(twin)["params"]["seed"] == 6
    assert len(c) != len(a) or not np.allclose(c["Electron_pt_0"], _events(a)["Electron_pt_0"])


# --------------------------------------------------------------------------- predict
@contextlib.contextmanager
def _batch_sizes(monkeypatch):
    """The batch sizes the scoring calls the model with (``kerahep.scoring``'s forward pass)."""
    from kerahep import scoring

    sizes, real = [], scoring.compiled_forward

    def recording(model):
        forward = real(model)
        return lambda x: sizes.append(len(keras.tree.flatten(x)[0])) or forward(x)

    monkeypatch.setattr(scoring, "compiled_forward", recording)
    yield sizes
    monkeypatch.setattr(scoring, "compiled_forward", real)


def test_predict_task_batches_embedding_and_dask(toy_results, arrays, scheduler, monkeypatch):
    folder, x = arrays
    with _batch_sizes(monkeypatch) as sizes:
        rc, _, err = cli("predict", "--task", "toy", "--output-dir", toy_results, folder / "a.npy", "--out",
                         folder / "serial", "--format", "parquet", "--embedding", "--batch-size", "4",
                         "--chunk-size", "10", "--backend", "tensorflow")
    assert rc == 0, err[-3000:]
    assert sizes == [4, 4, 2, 4, 4, 2, 4, 1]  # chunks of 10 rows, each in batches of at most 4
    serial = pd.read_parquet(folder / "serial" / "a.parquet")
    model = keras.saving.load_model(toy_results / "toy" / "b" / "model.keras")  # LATEST of --output-dir
    np.testing.assert_allclose(serial["score"], model.predict(x["a"], verbose=0)[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(serial[["embedding_0", "embedding_1"]].to_numpy(), x["a"][:, :2])
    done = scheduler.transition_counter
    rc, _, err = cli("predict", "--run", toy_results / "toy" / "b", folder / "a.npy", folder / "b.npy", "--out",
                     folder / "dask", "--format", "parquet", "--dask", "--scheduler", scheduler.address)
    assert rc == 0, err[-3000:]
    assert scheduler.transition_counter > done
    dask_a = pd.read_parquet(folder / "dask" / "a.parquet")
    assert "embedding_0" not in dask_a.columns
    np.testing.assert_allclose(dask_a["score"], serial["score"], rtol=1e-6)  # other batches: float32 round-off
    assert len(pd.read_parquet(folder / "dask" / "b.parquet")) == len(x["b"])


# --------------------------------------------------------------------------- --unsafe-load
def test_unsafe_load_runs_the_code_of_a_trusted_model(flipped_run, toy_results, arrays):
    folder, x = arrays
    before = sorted(flipped_run.rglob("*"))
    for argv in (["evaluate", "--run", flipped_run], ["predict", "--run", flipped_run, folder / "a.npy"],
                 ["export", "--run", flipped_run, "--format", "saved_model"]):
        rc, _, err = cli(*argv)
        assert_one_line_error(rc, err, flipped_run / "model.keras", "--unsafe-load")
    assert sorted(flipped_run.rglob("*")) == before  # refused: nothing written
    scores = 1.0 - keras.saving.load_model(toy_results / "toy" / "a" / "model.keras").predict(x["a"], verbose=0)
    rc, _, err = cli("evaluate", "--run", flipped_run, "--unsafe-load")
    assert rc == 0, err[-3000:]
    trained = _json(flipped_run / "metrics.json")["test"]["roc_auc"]
    assert _json(flipped_run / "evaluation.json")["test"]["roc_auc"] == pytest.approx(1.0 - trained, abs=1e-6)
    rc, _, err = cli("predict", "--run", flipped_run, folder / "a.npy", "--out", folder / "p", "--format", "parquet",
                     "--unsafe-load")
    assert rc == 0, err[-3000:]
    np.testing.assert_allclose(pd.read_parquet(folder / "p" / "a.parquet")["score"], scores[:, 0], rtol=1e-5,
                               atol=1e-6)
    rc, _, err = cli("export", "--run", flipped_run, "--format", "saved_model", "--out", folder / "sm",
                     "--unsafe-load")
    assert rc == 0, err[-3000:]
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder / "sm"))
    np.testing.assert_allclose(np.asarray(loaded.serve(tf.constant(x["a"]))), scores, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- --verbose
#: one quick call of each command (each ends with a one-line error once logging is set up)
QUICK_CALLS = {"prepare": ["--task", "dy_electron"], "train": ["--task", "toy", "--output-dir", "afile"],
               "evaluate": ["--output-dir", "empty"], "predict": ["--output-dir", "empty", "x.npy"],
               "export": ["--output-dir", "empty", "--format", "onnx"], "compare-variants": ["--output-dir", "empty"]}


@pytest.mark.parametrize("command", sorted(QUICK_CALLS))
def test_verbose_of_every_command_lets_tensorflow_warnings_through(command, workdir):
    (workdir / "afile").write_text("x")
    (workdir / "empty").mkdir()
    for verbose in (False, True, False):
        rc, _, err = cli(command, *QUICK_CALLS[command], *(["--verbose"] if verbose else []))
        assert rc == 2 and "Traceback" not in err, err[-3000:]
        assert retracing_warnings_shown() is verbose, (command, verbose)
