"""The command lines end to end in a temporary directory: prepare, train, evaluate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import assert_image_not_blank
from scripts import evaluate as evaluate_cli
from scripts import prepare_dataset as prepare_cli
from scripts import train as train_cli

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
FAST = ["--epochs", "3", "--batch-size", "64", "--quiet", "--set", "model.widths=(32,)"]


def assert_test_auc_is_the_models(run, test: dict) -> None:
    """The run's test AUC is that of its saved model's scores of its test events (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    from kerahep import load_model
    from kerahep.config import Config
    from kerahep.registry import get_task

    cfg = Config.from_file(run / "config.json")
    batches = list(get_task(cfg.task).load_data(cfg).test)
    model = load_model(run / "model.keras")
    y = np.concatenate([np.asarray(b[1]).reshape(-1) for b in batches])
    scores = np.concatenate([np.asarray(model.predict(b[0], verbose=0)).reshape(-1) for b in batches])
    assert test["n"] == len(y) and test["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-6)
    assert test["roc_auc"] > 0.5  # the twin's classes are separable


def _latest(task="dy_electron"):
    root = Path("results") / task
    return root / (root / "LATEST").read_text().strip()


def test_synthetic_prepare_train_evaluate(workdir, capsys):
    assert prepare_cli.main(["--task", "dy_electron", "--synthetic", "--quiet",
                             "--set", "data.synthetic_events=300", "--out", "prep.csv"]) == 0
    df = pd.read_csv("prep.csv")
    assert {"target", "sample", "m_ee", "Electron_pt_0"} <= set(df.columns) and set(df.target) == {0, 1}
    assert json.loads(Path("prep.csv.report.json").read_text())["source"] == "synthetic"

    assert train_cli.main(["--task", "dy_electron", "--data", "prep.csv", *FAST]) == 0
    run = _latest()
    m = json.loads((run / "metrics.json").read_text())
    assert m["data"]["source"] == "synthetic"  # a prepared copy of the twin stays labelled as such
    assert m["data"]["n_train"] + m["data"]["n_val"] + m["data"]["n_test"] == len(df)
    assert_test_auc_is_the_models(run, m["test"])
    for f in ("model.keras", "history.csv", "config.json"):
        assert (run / f).exists(), f
    for f in ("roc.png", "scores_per_sample.png", "confusion.png", "history.png"):
        assert_image_not_blank(run / "plots" / f)

    before = (run / "metrics.json").read_text()
    assert evaluate_cli.main([]) == 0  # newest run, its own test split
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["test"]["roc_auc"] == pytest.approx(m["test"]["roc_auc"], abs=1e-6)

    assert evaluate_cli.main(["--task", "dy_electron", "--data", "prep.csv"]) == 0
    ext = next((run / "external").iterdir())
    em = json.loads((ext / "metrics.json").read_text())
    assert em["independent_sample"] is True and em["test"]["n"] == len(df)  # every event scored
    assert_image_not_blank(ext / "plots" / "roc.png")
    assert (run / "metrics.json").read_text() == before  # training metrics untouched
    assert "roc_auc" in capsys.readouterr().out


@pytest.mark.realdata
def test_real_nanoaod_prepare_train_evaluate(workdir, realdata):
    dy = realdata("nanoaod", "nano_dy.root")
    tt = realdata("nanoaod", "nano_tt_v12.root")
    tt15 = realdata("nanoaod", "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    assert prepare_cli.main(["--task", "dy_electron", "--signal", str(dy), "--background", str(tt), str(tt15),
                             "--quiet"]) == 0
    out = Path("data/processed/electron_dataset.csv")
    df = pd.read_csv(out)
    report = json.loads(Path(str(out) + ".report.json").read_text())
    assert report["source"] == "files"
    # one row per selected event; every event read is either written or counted as failing
    assert len(df) == report["selected"] == 196
    assert report["events_read"] == 40 + 200 + 200
    assert report["events_read"] == report["selected"] + report["failed_preselection"]
    assert set(df.loc[df.target == 1, "sample"]) == {"nano_dy"}

    assert train_cli.main(["--task", "dy_electron", *FAST, "--batch-size", "16"]) == 0
    m = json.loads((_latest() / "metrics.json").read_text())
    assert m["data"]["source"] == "files" and m["data"]["paths"] == [str(out)]
    assert evaluate_cli.main(["--task", "dy_electron"]) == 0


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_user_mistakes_exit_2_with_one_clear_line(tmp_path):
    out = _cli("scripts.train", "--task", "dy_electorn", cwd=tmp_path)
    assert out.returncode == 2 and "Did you mean 'dy_electron'" in out.stderr and "Traceback" not in out.stderr
    out = _cli("scripts.train", "--task", "dy_electron", "--set", "training.epoch=2", cwd=tmp_path)
    assert out.returncode == 2 and "valid training keys" in out.stderr and "Traceback" not in out.stderr
    out = _cli("scripts.prepare_dataset", "--task", "dy_electron", "--signal", "missing.root",
               "--background", "also_missing.root", cwd=tmp_path)
    assert out.returncode == 2 and "missing.root" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "notroot.root").write_bytes(b"this is not a ROOT file" * 10)
    out = _cli("scripts.prepare_dataset", "--signal", "notroot.root", "--background", "notroot.root", cwd=tmp_path)
    assert out.returncode == 2 and "notroot.root" in out.stderr and "Traceback" not in out.stderr
    out = _cli("scripts.evaluate", cwd=tmp_path)
    assert out.returncode == 2 and "no complete runs" in out.stderr
    assert not (tmp_path / "results" / "dy_electron").exists() or not any((tmp_path / "results" / "dy_electron").iterdir())


def test_every_command_has_help(tmp_path):
    for mod in ("scripts.train", "scripts.evaluate", "scripts.prepare_dataset", "scripts.benchmark",
                "scripts.compare_variants", "scripts.export"):
        out = _cli(mod, "--help", cwd=tmp_path)
        assert out.returncode == 0 and "usage:" in out.stdout, mod


def test_list_shows_every_task_with_its_presets_and_smoke(capsys):
    from kerahep.registry import get_task, list_tasks

    assert train_cli.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = [n for n in list_tasks() if type(get_task(n)).__module__.startswith("kerahep.tasks.")]
    assert len(shipped) == 5  # toy tasks that other test modules register are not ours to check
    for name in shipped:
        (line,) = [ln for ln in lines if ln.startswith(name + " ")]
        task = get_task(name)
        assert f"presets: {', '.join(task.presets)}, smoke " in line
        smoke = task.preset("smoke")
        assert smoke.preset == "smoke" and smoke.data.data_dir == "data/smoke"  # never overwrites the default twin


def test_config_file_reproduces_a_run_configuration_with_set_on_top(tmp_path):
    import json

    import yaml

    from kerahep.errors import ConfigError
    from kerahep.registry import get_task

    saved = get_task("hcal_dqm").preset("smoke").override(["model.dim=90", "model.num_heads=6", "run.run_id=old"])
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    args = train_cli.parser().parse_args(["--config", str(tmp_path / "config.json"), "--set", "training.epochs=3"])
    cfg = train_cli.build_config(args)
    assert cfg.task == "hcal_dqm" and cfg.preset == "smoke" and (cfg.model.dim, cfg.model.num_heads) == (90, 6)
    assert cfg.training.epochs == 3 and cfg.run.run_id is None  # a new run, not the saved run's folder
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"task": "dy_electron", "model": {"widths": [8]}}))
    cfg = train_cli.build_config(train_cli.parser().parse_args(["--config", str(tmp_path / "c.yml"), "--epochs", "2"]))
    assert cfg.task == "dy_electron" and cfg.model.widths == (8,) and cfg.training.epochs == 2
    with pytest.raises(ConfigError, match="expected a configuration of task 'jet_ssl'"):
        train_cli.build_config(train_cli.parser().parse_args(["--config", str(tmp_path / "c.yml"), "--task", "jet_ssl"]))


@pytest.mark.parametrize("order", [("model.dim=90", "model.num_heads=6"), ("model.num_heads=6", "model.dim=90")])
def test_set_values_of_one_section_are_accepted_in_either_order(order):
    args = ["--task", "hcal_dqm"] + [a for o in order for a in ("--set", o)]
    cfg = train_cli.build_config(train_cli.parser().parse_args(args))
    assert (cfg.model.dim, cfg.model.num_heads) == (90, 6)


def test_kerahep_command_dispatches_to_the_same_parsers(capsys):
    from kerahep import commands

    assert commands.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("prepare", "train", "evaluate", "benchmark"):
        assert f"  {name} " in out
    assert commands.main(["trian"]) == 2 and "Did you mean 'train'" in capsys.readouterr().err
    assert commands.main([]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse's --help of the subcommand, under its kerahep name
        commands.main(["train", "--help"])
    assert exc.value.code == 0 and "usage: kerahep train" in capsys.readouterr().out
    assert commands.main(["train", "--task", "dy_electorn"]) == 2  # the package's error, one line
    assert "Did you mean 'dy_electron'" in capsys.readouterr().err
    from kerahep.commands import train as train_command

    assert train_cli.parser is train_command.parser and train_cli.main is train_command.main


@pytest.mark.slow
def test_installed_kerahep_command_trains_from_a_folder_outside_the_repository(tmp_path):
    """A non-editable install (a wheel into its own folder, found first on PYTHONPATH) has a
    working ``kerahep`` command, run from a folder that is not the repository."""
    import shutil

    wheels, target, work, src = (tmp_path / n for n in ("wheels", "site", "elsewhere", "src"))
    work.mkdir()
    # build from a copy of the sources: setuptools keeps a build/ folder beside them, whose
    # stale modules (deleted since) would otherwise go into the wheel
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "kerahep", src / "kerahep", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("kerahep-*.whl")
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    where = subprocess.run([sys.executable, "-c", "import kerahep; print(kerahep.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where  # the installed copy, not the checkout
    out = subprocess.run([str(target / "bin" / "kerahep"), "train", "--task", "dy_electron", "--preset", "smoke",
                          "--quiet"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    latest = work / "results" / "dy_electron" / "LATEST"
    assert latest.exists() and (latest.parent / latest.read_text().strip() / "model.keras").exists()
    assert (work / "data" / "smoke").is_dir()  # relative defaults resolve against the current folder
