"""Exports of trained runs (kerahep.export, python -m scripts.export).

Each task's smoke preset is trained once per session (the shared ``smoke_run`` fixture), then its
main model is exported to ONNX and run with ONNX Runtime at two batch sizes against Keras
(1e-5); SavedModel round trips through ``tf.saved_model.load``; hls4ml emulations of the
dense dy_electron network and of a tiny energy-only ResNet-15 are scored on the test
events. The provenance, atomic writing (a failing conversion leaves nothing behind) and
the message for a missing converter are checked on dy_electron. dy_electron trains in
about half a minute; the other tasks' runs take one to three minutes each and are marked
slow.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_backend  # noqa: E402 - skips, or fails with KERAHEP_REQUIRE_BACKENDS=1 (CI)


def _require_export_extra() -> None:
    import importlib.util
    import os

    missing = [m for m in ("onnx", "onnxruntime", "tf2onnx") if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (pip install -e '.[export]')"
        if os.environ.get("KERAHEP_REQUIRE_BACKENDS") == "1":
            raise RuntimeError(msg + " and KERAHEP_REQUIRE_BACKENDS=1")
        pytest.skip(msg, allow_module_level=True)


_require_export_extra()

import keras  # noqa: E402

from kerahep.errors import KerahepError  # noqa: E402
from kerahep.export import ExportError, MissingDependencyError, export_run, load_run  # noqa: E402

ATOL = 1e-5


def onnx_outputs(path, feeds: dict) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def check_onnx(run_dir: Path, out: Path, **kwargs) -> dict:
    """Export to ONNX and check it here too: named inputs, free batch, Keras outputs within ATOL."""
    result = export_run(run_dir, "onnx", out=out, **kwargs)
    assert Path(result["path"]) == out and out.exists()
    assert result["check"]["passed"] and result["check"]["max_scaled_diff"] <= ATOL
    run = load_run(run_dir)
    x = run.x
    names = [s["name"] for s in json.loads(Path(result["provenance"]).read_text())["inputs"]]
    leaves = dict(zip(sorted(x), [x[k] for k in sorted(x)])) if isinstance(x, dict) else {names[0]: x}
    assert sorted(leaves) == sorted(names)
    n = len(next(iter(leaves.values())))
    for size in sorted({n, 3, 1}):  # the batch dimension is free
        feeds = {k: np.asarray(v[:size], dtype=np.float32) for k, v in leaves.items()}
        got = onnx_outputs(out, feeds)
        part = keras.tree.map_structure(lambda a, n=size: a[:n], x)
        want = keras.tree.map_structure(keras.ops.convert_to_numpy, run.model(part, training=False))
        want = want if isinstance(want, dict) else {next(iter(got)): want}
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for k in want:
            assert got[k].shape == want[k].shape
            # 1e-5 absolute for scores; relative to the output's size beyond 1 (GeV regressions)
            scale = max(1.0, float(np.abs(want[k]).max()))
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=ATOL * scale, err_msg=k)
    return result


def check_saved_model(run_dir: Path, out: Path) -> dict:
    import tensorflow as tf

    result = export_run(run_dir, "saved_model", out=out)
    assert result["check"]["passed"] and (out / "saved_model.pb").exists()
    run = load_run(run_dir)
    loaded = tf.saved_model.load(str(out))
    for size in (len(keras.tree.flatten(run.x)[0]), 2):
        part = keras.tree.map_structure(lambda a, n=size: a[:n], run.x)
        got = keras.tree.map_structure(np.asarray, loaded.serve(keras.tree.map_structure(tf.constant, part)))
        want = keras.tree.map_structure(keras.ops.convert_to_numpy, run.model(part, training=False))
        for g, w in zip(keras.tree.flatten(got), keras.tree.flatten(want)):
            np.testing.assert_allclose(g, w, rtol=0, atol=ATOL * max(1.0, float(np.abs(w).max())))
    assert "serving_default" in loaded.signatures
    prov = json.loads((out / "kerahep_provenance.json").read_text())
    assert prov["format"] == "saved_model" and prov["serving_signature"]["name"] == "serving_default"
    return result


def leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------ dy_electron
@pytest.fixture(scope="module")
def dy_run(smoke_run):
    return smoke_run("dy_electron").run_dir


@pytest.fixture(scope="module")
def dy_onnx(dy_run, tmp_path_factory):
    return check_onnx(dy_run, tmp_path_factory.mktemp("dy_onnx") / "dy.onnx")


def test_dy_electron_onnx_matches_keras_with_named_inputs(dy_onnx):
    prov = json.loads(Path(dy_onnx["provenance"]).read_text())
    assert len(prov["inputs"]) > 30 and all(i["shape"] == [None, 1] for i in prov["inputs"])
    assert {"m_ee", "Electron_pt_0", "MET_pt"} <= set(prov["input_order"])
    assert [o["name"] for o in prov["outputs"]] == ["score"]
    assert dy_onnx["route"] in ("keras", "tf2onnx")


def test_provenance_records_the_run_model_inputs_and_converters(dy_run, dy_onnx):
    import kerahep

    prov = json.loads(Path(dy_onnx["provenance"]).read_text())
    assert prov["run"]["run_id"] == dy_run.name and prov["run"]["task"] == "dy_electron"
    assert prov["model"]["sha256"] == hashlib.sha256((dy_run / "model.keras").read_bytes()).hexdigest()
    assert prov["kerahep_version"] == kerahep.__version__
    assert all(i["dtype"] == "float32" for i in prov["inputs"])
    assert prov["input_order"] == [i["name"] for i in prov["inputs"]]
    assert sorted(prov["keras_input_order"]) == sorted(prov["input_order"])
    pre = {p["name"]: p["class"] for p in prov["preprocessing"]}
    assert pre.get("scaler") == "Normalization"
    for name in ("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime"):
        assert prov["converters"][name], name
    assert prov["check"]["max_abs_diff"] <= ATOL and prov["check"]["batch_sizes"][-1] == 1
    assert prov["check"]["per_output"]["score"]["scale"] == 1.0  # a probability: compared in absolute terms
    assert prov["route"] == dy_onnx["route"]


def test_dy_electron_saved_model_round_trip(dy_run, tmp_path):
    check_saved_model(dy_run, tmp_path / "sm")


def test_failed_conversion_leaves_nothing_behind(dy_run, tmp_path, monkeypatch):
    from kerahep.export import onnx as onnx_export

    def half_written(run, specs, path, opset):
        Path(path).write_bytes(b"not an onnx file")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(onnx_export, "build_keras", half_written)
    monkeypatch.setattr(onnx_export, "build_tf2onnx", half_written)
    out = tmp_path / "exports" / "model.onnx"
    with pytest.raises(ExportError, match="converter crashed"):
        export_run(dy_run, "onnx", out=out, routes=["keras", "tf2onnx"])
    assert leftovers(out.parent) == []
    # an existing export stays as it was
    out.write_text("previous export")
    with pytest.raises(ExportError):
        export_run(dy_run, "onnx", out=out, routes=["keras", "tf2onnx"])
    assert leftovers(out.parent) == ["model.onnx"] and out.read_text() == "previous export"


def test_failed_saved_model_check_leaves_no_folder(dy_run, tmp_path, monkeypatch):
    from kerahep.export import saved_model

    def differs(*args, **kwargs):
        raise ExportError("the reloaded SavedModel differs")

    monkeypatch.setattr(saved_model, "verify", differs)
    with pytest.raises(ExportError, match="differs"):
        export_run(dy_run, "saved_model", out=tmp_path / "exports" / "sm")
    assert leftovers(tmp_path / "exports") == []


@pytest.mark.parametrize("module,fmt", [("tf2onnx", "onnx"), ("onnxruntime", "onnx"), ("hls4ml", "hls4ml")])
def test_missing_converter_is_a_message_with_the_install_line(dy_run, tmp_path, monkeypatch, capsys, module, fmt):
    from kerahep import cli
    from scripts.export import main

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'kerahep\[export\]'"):
        export_run(dy_run, fmt, out=tmp_path / "x")
    assert cli.run(main, ["--run", str(dy_run), "--format", fmt, "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and module in err and "pip install 'kerahep[export]'" in err
    assert "Traceback" not in err and leftovers(tmp_path) == []


def test_command_line_exports_and_summarises(smoke_run, dy_run, tmp_path, capsys):
    import onnx

    from kerahep import cli
    from scripts.export import main

    out = tmp_path / "cli.onnx"
    results = smoke_run("dy_electron").root / "results"  # --task: the LATEST run of --output-dir
    assert cli.run(main, ["--task", "dy_electron", "--output-dir", str(results), "--format", "onnx", "--out", str(out),
                          "--events", "64", "--opset", "17", "--atol", "1e-4"]) == 0
    text = capsys.readouterr().out
    prov = json.loads(Path(str(out) + ".provenance.json").read_text())
    assert prov["run"]["run_id"] == dy_run.name and prov["opset"] == 17
    assert {o.version for o in onnx.load(str(out)).opset_import if (o.domain or "") == ""} == {17}
    assert prov["check"]["atol"] == 1e-4 and prov["check"]["events"] == 64 and prov["check"]["passed"]
    assert "route" in text and "max |export - Keras|" in text and "accepted up to 0.0001" in text
    assert cli.run(main, ["--run", str(tmp_path), "--format", "onnx"]) == 2  # not a run: one line, exit 2
    assert "config.json" in capsys.readouterr().err


@pytest.fixture
def hls_scores(monkeypatch):
    """The scores each hls4ml export is reported on: ``[{"y", "floats", "emulated"}]``."""
    from kerahep.export import hls

    seen, report = [], hls.score_report

    def spy(y, floats, emulated, *args):
        seen.append({"y": np.asarray(y), "floats": np.asarray(floats), "emulated": np.asarray(emulated)})
        return report(y, floats, emulated, *args)

    monkeypatch.setattr(hls, "score_report", spy)
    return seen


def check_hls_aucs(run_dir, report: dict, scores: dict, events) -> None:
    """The report's AUCs are those of its scores (scikit-learn), its float scores the Keras
    model's on the run's first ``events`` test events."""
    from sklearn.metrics import roc_auc_score

    run = load_run(run_dir, max_events=events)
    np.testing.assert_array_equal(scores["y"], np.asarray(run.y).reshape(-1))
    keras_scores = np.asarray(run.model.predict(run.x, verbose=0), np.float64).reshape(-1)
    np.testing.assert_allclose(scores["floats"], keras_scores, rtol=1e-5, atol=1e-6)
    assert report["events"] == len(scores["y"]) == run.n_events
    assert report["auc_float"] == pytest.approx(roc_auc_score(scores["y"], scores["floats"]), abs=1e-9)
    assert report["auc_emulated"] == pytest.approx(roc_auc_score(scores["y"], scores["emulated"]), abs=1e-9)
    diff = np.abs(scores["emulated"] - scores["floats"])
    assert report["score_difference"] == pytest.approx({"max_abs": diff.max(), "mean_abs": diff.mean()})


def test_dy_electron_hls4ml_emulation_scores_the_test_events(dy_run, tmp_path, hls_scores):
    require_backend("hls4ml")
    from kerahep import cli
    from scripts.export import main

    out = tmp_path / "hls"
    assert cli.run(main, ["--run", str(dy_run), "--format", "hls4ml", "--out", str(out), "--precision",
                          "ap_fixed<18,8>", "--reuse-factor", "2", "--io-type", "io_parallel", "--hls-backend",
                          "Vitis", "--hls-events", "300"]) == 0
    report = json.loads((out / "hls_report.json").read_text())
    (scores,) = hls_scores
    check_hls_aucs(dy_run, report, scores, 300)
    assert abs(report["auc_emulated"] - report["auc_float"]) < 0.02
    assert report["score_difference"]["max_abs"] < 0.05 and report["score_difference"]["mean_abs"] < 0.01
    assert (report["reuse_factor"], report["precision"], report["io_type"], report["backend"]) == (
        2, "ap_fixed<18,8>", "io_parallel", "Vitis")
    config = (out / "project" / "hls4ml_config.yml").read_text()
    assert "ap_fixed<18,8>" in config and "ReuseFactor: 2" in config and "Backend: Vitis" in config
    where = report["what_runs_where"]
    assert [la["class"] for la in where["keras_part"]["layers"]] == ["Concatenate", "Normalization"]
    assert where["hls_part"]["layers"][-1]["name"] == "score" and where["hls_part"]["input_shape"][1] > 30
    prov = json.loads((out / "kerahep_provenance.json").read_text())
    assert prov["what_runs_where"] == where and prov["converters"]["hls4ml"]
    assert report["compile_seconds"] > 0 and (out / "project").is_dir()


def test_hls4ml_refuses_layers_it_cannot_convert(tmp_path):
    require_backend("hls4ml")
    from kerahep.export.common import RunInputs
    from kerahep.export.hls import export_hls
    from kerahep.layers import Log1p, PositionEmbedding

    inp = keras.Input((4, 3), name="hits")
    x = Log1p(name="log")(inp)  # preprocessing: runs in Keras
    x = keras.layers.Dense(3, name="embed")(x)
    x = PositionEmbedding(name="positions")(x)  # not convertible, after the preprocessing
    out = keras.layers.Dense(1, activation="sigmoid", name="score")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    xs = np.random.default_rng(0).random((8, 4, 3)).astype("float32")
    run = RunInputs(run_dir=tmp_path, run_id="toy", task="toy", config=None, model=model,
                    model_path=tmp_path / "model.keras", x=xs, y=np.arange(8) % 2)
    with pytest.raises(ExportError, match=r"positions \(PositionEmbedding\)"):
        export_hls(run, tmp_path / "hls")
    assert not (tmp_path / "hls").exists()


def test_options_are_checked(dy_run, tmp_path):
    with pytest.raises(ExportError, match="ap_fixed"):
        export_run(dy_run, "hls4ml", out=tmp_path / "h", precision="float")
    with pytest.raises(ExportError, match="format"):
        export_run(dy_run, "tflite", out=tmp_path / "t")
    with pytest.raises(KerahepError, match="model.keras"):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "config.json").write_text((dy_run / "config.json").read_text())
        export_run(tmp_path / "run", "onnx")


# ----------------------------------------------------------------- other tasks
@pytest.fixture(scope="module")
def electron_photon_run(smoke_run):
    return smoke_run("electron_photon").run_dir


@pytest.fixture(scope="module")
def energy_resnet_run(smoke_run):
    return smoke_run("electron_photon", "model.variant='energy'", "model.widths=(4,8)",
                     "model.blocks=(1,1)").run_dir


@pytest.fixture(scope="module")
def hcal_run(smoke_run):
    return smoke_run("hcal_dqm", "model.name='moe_vit'").run_dir  # ViT with mixture-of-experts blocks


@pytest.fixture(scope="module")
def higgs_run(smoke_run):
    return smoke_run("higgs_mae").run_dir


@pytest.fixture(scope="module")
def jet_run(smoke_run):
    return smoke_run("jet_ssl").run_dir


@pytest.mark.slow
def test_electron_photon_onnx_and_saved_model(electron_photon_run, tmp_path):
    result = check_onnx(electron_photon_run, tmp_path / "ep.onnx")
    prov = json.loads(Path(result["provenance"]).read_text())
    assert {"flip_eta", "energy_log"} <= {p["name"] for p in prov["preprocessing"]}
    check_saved_model(electron_photon_run, tmp_path / "sm")


@pytest.mark.slow
def test_onnx_failure_names_the_layer(electron_photon_run, tmp_path):
    # tf2onnx 1.17 has no conversion of TensorFlow's Log1p (ChannelLog1p's log1p)
    out = tmp_path / "exports" / "ep.onnx"
    with pytest.raises(ExportError, match=r"energy_log \(ChannelLog1p\)"):
        export_run(electron_photon_run, "onnx", out=out, routes=["keras"])
    assert leftovers(out.parent) == []


@pytest.mark.slow
def test_torch_route_gives_the_same_outputs(electron_photon_run, tmp_path):
    require_backend("torch")
    result = check_onnx(electron_photon_run, tmp_path / "torch.onnx", routes=["torch"])
    assert result["route"] == "torch"


@pytest.mark.slow
def test_hcal_dqm_moe_vit_onnx_and_saved_model(hcal_run, tmp_path):
    check_onnx(hcal_run, tmp_path / "hcal.onnx")
    check_saved_model(hcal_run, tmp_path / "sm")


@pytest.mark.slow
def test_higgs_mae_transformer_onnx(higgs_run, tmp_path):
    check_onnx(higgs_run, tmp_path / "higgs.onnx")


@pytest.mark.slow
def test_jet_ssl_onnx_with_dict_outputs(jet_run, tmp_path):
    result = check_onnx(jet_run, tmp_path / "jet.onnx")
    prov = json.loads(Path(result["provenance"]).read_text())
    assert len(prov["outputs"]) >= 1


@pytest.mark.slow
def test_energy_resnet_hls4ml_emulation(energy_resnet_run, tmp_path, hls_scores):
    require_backend("hls4ml")
    out = tmp_path / "hls"
    export_run(energy_resnet_run, "hls4ml", out=out)
    report = json.loads((out / "hls_report.json").read_text())
    check_hls_aucs(energy_resnet_run, report, hls_scores[0], None)
    assert report["score_difference"]["max_abs"] < 0.1 and report["score_difference"]["mean_abs"] < 0.05
    keras_part = {la["class"] for la in report["what_runs_where"]["keras_part"]["layers"]}
    assert "ChannelLog1p" in keras_part and "Conv2D" not in keras_part
    assert any(la["class"] == "Conv2D" for la in report["what_runs_where"]["hls_part"]["layers"])
