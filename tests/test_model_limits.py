"""A model file from someone else: :func:`kerahep.saving.load_model` bounds memory before
Keras allocates anything, and every failure while loading is kerahep's error naming the
file and the whole cause.

The hostile archives are built in ``tmp_path`` from a tiny model, cheaply: an HDF5
dataset with a shape and nothing written, a configuration padded with compressed
blanks, deflated blocks of zeros as assets. Those that would make an unguarded loader
allocate gigabytes are loaded only in a child process that is killed past 2.5 GB, which
reports the growth of its peak memory per file (under 200 MB each).
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from kerahep import cli
from kerahep.errors import DataError, UnsafeModelError
from kerahep.saving import ENV, ModelLimits, load_model, parse_size

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20


# ----------------------------------------------------------------------- hostile archives
def tiny_model(path: Path, width: int = 2, inputs: int = 3) -> Path:
    """A Dense model saved to ``path`` (a few kB)."""
    import keras

    inp = keras.Input((inputs,), name="x")
    model = keras.Model(inp, keras.layers.Dense(width, name="dense")(inp))
    model.save(path)
    return path


def rewrite(src: Path, dst: Path, config=None, weights: bytes | None = None, extra=(),
            config_padding: int = 0) -> Path:
    """Copy the archive ``src`` to ``dst`` with another configuration (a dict or a function
    of the old one), weights file or extra members ``(name, bytes, compress_type)``;
    ``config_padding`` blanks are appended to the configuration, deflated as they are written."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compresslevel=1) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json" and (config is not None or config_padding):
                old = json.loads(data)
                new = config(old) if callable(config) else (config if config is not None else old)
                data = json.dumps(new).encode()
                if config_padding:
                    member = zipfile.ZipInfo("config.json")
                    member.compress_type = zipfile.ZIP_DEFLATED
                    with zout.open(member, "w", force_zip64=True) as f:
                        f.write(data)
                        block = b" " * (16 * MiB)
                        for _ in range(config_padding // len(block)):
                            f.write(block)
                    continue
            if info.filename == "model.weights.h5" and weights is not None:
                data = weights
            zout.writestr(info.filename, data)
        for name, data, compress in extra:
            zout.writestr(zipfile.ZipInfo(name), data, compress_type=compress)
    return dst


def weights_with(src: Path, name: str, shape, write: bool = False, dtype="float32") -> bytes:
    """The weights file of ``src`` with dataset ``name`` declared as ``shape``: nothing
    stored (HDF5 allocates on first write) unless ``write``."""
    with zipfile.ZipFile(src) as z:
        original = io.BytesIO(z.read("model.weights.h5"))
    out = io.BytesIO()
    with h5py.File(original, "r") as fin, h5py.File(out, "w") as fout:
        for key in fin:
            fin.copy(fin[key], fout, name=key)
        for key, value in fin.attrs.items():
            fout.attrs[key] = value
        del fout[name]
        if write:
            fout.create_dataset(name, data=np.ones(shape, dtype))
        else:
            fout.create_dataset(name, shape=shape, dtype=dtype)
    return out.getvalue()


def with_units(*units):
    """A configuration transform: the model's Dense layers replaced by a chain of Dense(units)."""
    def transform(config):
        layers = config["config"]["layers"]
        dense = next(layer for layer in layers if layer["class_name"] == "Dense")
        chain, previous = [], "x"
        for i, n in enumerate(units):
            layer = json.loads(json.dumps(dense))
            layer["config"].update(name=f"d{i}", units=n)
            layer["name"] = f"d{i}"
            layer.pop("build_config", None)
            layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = [previous, 0, 0]
            layer["inbound_nodes"][0]["args"][0]["config"]["shape"] = [None, None]
            chain.append(layer)
            previous = f"d{i}"
        config["config"]["layers"] = [layer for layer in layers if layer["class_name"] != "Dense"] + chain
        config["config"]["output_layers"] = [previous, 0, 0]
        config.pop("build_config", None)
        return config
    return transform


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("limits") / "tiny.keras")


def hostile_files(base: Path, folder: Path) -> dict:
    """``name -> (file, limit or None, words the error must hold)``: each would make an
    unguarded loader allocate or unpack hundreds of MB to tens of GB."""
    gib2 = (1 << 29,)  # float32: 2 GiB
    weights = weights_with(base, "layers/dense/vars/0", gib2)
    zeros = np.zeros(4 * MiB, np.uint8).tobytes()
    return {
        # a 17 kB file whose weights file declares 2 GiB with nothing stored
        "weights_2GiB_declared": (rewrite(base, folder / "w.keras", weights=weights), None,
                                  ["model.weights.h5", "layers/dense/vars/0", "2GiB", "--max-model-size"]),
        # the same under a raised limit: a dataset that stores nothing is a shape bomb
        "weights_2GiB_limit_raised": (folder / "w.keras", "4GiB", ["layers/dense/vars/0", "shape bomb"]),
        # config.json padded with 192 MiB of blanks (deflated to a few hundred kB)
        "config_192MiB": (rewrite(base, folder / "c.keras", config_padding=192 * MiB), None,
                          ["config.json", "192.1MiB"]),
        # four asset members that decompress 1000-fold
        "assets_bombs": (rewrite(base, folder / "a.keras", extra=[(f"assets/blob{i}", zeros, zipfile.ZIP_DEFLATED)
                                                                  for i in range(4)]), None,
                         ["assets/blob", "decompression bomb"]),
        # Dense(units=10**12): refused before anything is built
        "dense_1e12": (rewrite(base, folder / "d.keras", config=with_units(10**12)), None,
                       ["units = 1000000000000", "config.json"]),
        # the same with no limit: Keras' own out-of-memory error becomes kerahep's
        "dense_1e12_no_limit": (folder / "d.keras", "none", ["expected a model that fits in memory", "while building it"]),
        # two Dense(10**5) in a row: 4e10 bytes of kernel, found by building without allocating
        "dense_1e5_by_1e5": (rewrite(base, folder / "p.keras", config=with_units(10**5, 10**5)), None,
                             ["parameters", "d1/kernel", "(100000, 100000)"]),
    }


CHILD = r"""
import json, resource, sys
from kerahep.errors import KerahepError
from kerahep.saving import load_model
cases = json.loads(sys.argv[1])
load_model(cases.pop("__warmup__")[0])  # Keras and the backend initialized
for name, (path, limit) in cases.items():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_model(path, limits=limit)
        error = None
    except KerahepError as exc:
        error = str(exc)
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"name": name, "growth_mb": growth, "error": error}), flush=True)
"""


def run_watched(cases: dict, kill_above_mb: float = 2500, timeout: float = 240) -> tuple[list, float]:
    """Run :data:`CHILD` on ``cases``; kill it when its memory passes ``kill_above_mb``."""
    import psutil

    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env.pop(ENV, None)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cases)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    peak, start, killed = 0.0, time.monotonic(), False
    try:
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss / MiB)
            except psutil.NoSuchProcess:
                break
            if peak > kill_above_mb or time.monotonic() - start > timeout:
                proc.kill()
                killed = True
                break
            time.sleep(0.02)
    finally:
        out, err = proc.communicate()
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert not killed, f"the loader passed {peak:.0f} MB (or {timeout} s); finished: {results}\n{err[-3000:]}"
    assert proc.returncode == 0, err[-3000:]
    return results, peak


def test_hostile_files_are_refused_with_little_memory(base, tmp_path):
    files = hostile_files(base, tmp_path)
    cases = {"__warmup__": [str(base), None], **{name: [str(f), limit] for name, (f, limit, _) in files.items()}}
    results, peak = run_watched(cases)
    assert [r["name"] for r in results] == list(files)
    for r in results:
        path, _, words = files[r["name"]]
        assert r["error"] is not None, f"{r['name']} loaded"
        assert r["error"].startswith(str(path)), r
        for word in words:
            assert word in r["error"], (r["name"], word, r["error"])
        assert r["growth_mb"] < 200, r
    assert all(f.stat().st_size < 2 * MiB for f, _, _ in files.values())


# ------------------------------------------------------------------------- unit checks
def test_the_hint_names_a_limit_that_loads_the_file(tmp_path):
    path = tiny_model(tmp_path / "m.keras", width=100, inputs=100)  # 40 kB of kernel
    with pytest.raises(DataError, match="--max-model-size") as err:
        load_model(path, limits="10kB")
    hint = str(err.value).split("--max-model-size ")[1].split()[0]
    assert parse_size(hint) > 40_000
    assert load_model(path, limits=hint) is not None
    assert load_model(path) is not None  # far below the default


def test_declared_arrays_must_fit_the_model_built_from_the_config(base, tmp_path):
    path = rewrite(base, tmp_path / "m.keras", weights=weights_with(base, "layers/dense/vars/0", (3, 5), write=True))
    with pytest.raises(DataError, match=r"layers/dense/vars/0 of shape \(3, 5\) \(15 values\), larger than any of "
                                        r"its 2 variables \(the largest holds 6\)"):
        load_model(path)


def test_config_over_its_limit_is_refused_before_it_is_read(base, tmp_path):
    path = rewrite(base, tmp_path / "m.keras", config=lambda c: {**c, "padding": "x" * 100_000})
    with pytest.raises(DataError, match=r"config.json of 9\d.\dKiB; the limit is 64KiB"):
        load_model(path, limits=ModelLimits(config=64 * 1024))
    assert load_model(path) is not None


def test_assets_together_over_their_limit(base, tmp_path):
    rng = np.random.default_rng(0)
    blobs = [(f"assets/b{i}", rng.bytes(600_000), zipfile.ZIP_STORED) for i in range(2)]
    path = rewrite(base, tmp_path / "m.keras", extra=blobs)
    with pytest.raises(DataError, match=r"1.2MiB besides the configuration and weights; the limit is 1MiB"):
        load_model(path, limits=ModelLimits(assets=MiB))


def test_too_many_keras_objects(base, tmp_path):
    path = rewrite(base, tmp_path / "m.keras", config=with_units(*[4] * 8))
    with pytest.raises(DataError, match="more Keras objects than that"):
        load_model(path, limits=ModelLimits(objects=10))
    path = rewrite(base, tmp_path / "v.keras", config=lambda c: {**c, "padding": [0] * 2000})
    with pytest.raises(DataError, match="config.json of at most 1000 values"):
        load_model(path, limits=ModelLimits(objects=10))


def with_config_text(src: Path, dst: Path, text: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, text if info.filename == "config.json" else zin.read(info))
    return dst


@pytest.mark.parametrize("depth, words", [(150, "nested deeper"), (100_000, "nested too deeply")])
def test_deeply_nested_config(base, tmp_path, depth, words):
    with zipfile.ZipFile(base) as z:
        text = z.read("config.json").decode()
    assert '"kernel_regularizer": null' in text
    deep = "[" * depth + "]" * depth  # json.dumps would recurse too deeply itself: write the text
    path = with_config_text(base, tmp_path / "m.keras", text.replace('"kernel_regularizer": null',
                                                                       f'"kernel_regularizer": {deep}'))
    with pytest.raises(DataError, match=words) as err:
        load_model(path)
    assert str(err.value).startswith(str(path)) and "config.json" in str(err.value)


def test_refused_model_leaves_no_variable_to_initialize(base, tmp_path):
    import keras
    from keras.src.backend.common import global_state

    path = rewrite(base, tmp_path / "m.keras", config=with_units(1000, 1000))
    with pytest.raises(DataError, match="parameters"):
        load_model(path, limits="1MB")
    assert not global_state.get_global_attribute("uninitialized_variables")
    with keras.StatelessScope():  # would initialize what the measurement left behind
        pass


def test_torch_module_wrapper_without_torch(base, tmp_path, monkeypatch):
    def transform(config):
        config["config"]["layers"].append({
            "module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": "TorchModuleWrapper",
            "config": {"name": "wrapped", "module": "AAAA", "trainable": True}, "inbound_nodes": [],
            "name": "wrapped"})
        return config

    path = rewrite(base, tmp_path / "m.keras", config=transform)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    for safe in (True, False):
        with pytest.raises(DataError, match=r"ModuleNotFoundError: import of torch halted.*not installed") as err:
            load_model(path, safe_mode=safe)
        assert str(err.value).startswith(str(path))


def test_nan_weights_are_refused(tmp_path):
    import keras

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, name="dense")(inp))
    kernel = model.layers[1].kernel
    kernel.assign(np.where(np.eye(3, 2) > 0, np.nan, 0.0).astype("float32"))
    model.save(tmp_path / "nan.keras")
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 of 2 variables: dense/kernel"):
        load_model(tmp_path / "nan.keras")


def test_unsafe_load_is_not_told_to_pass_unsafe_load(tmp_path):
    import keras

    inp = keras.Input((2,))
    src = tmp_path / "lambda.keras"
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2, name="twice")(inp)).save(src)

    def broken(config):
        next(layer for layer in config["config"]["layers"]
             if layer["class_name"] == "Lambda")["config"]["output_shape"] = "abc"
        return config

    path = rewrite(src, tmp_path / "broken.keras", config=broken)
    with pytest.raises(UnsafeModelError, match="--unsafe-load"):
        load_model(path)
    with pytest.raises(DataError) as err:
        load_model(path, safe_mode=False)
    text = str(err.value)
    assert "--unsafe-load" not in text and "safe mode" not in text and str(path) in text


def test_whole_cause_is_kept(base, tmp_path):
    long_name = "activation_" + "x" * 400

    def rename(config):
        config["config"]["layers"][-1]["config"]["activation"] = long_name
        return config

    path = rewrite(base, tmp_path / "n.keras", config=rename)
    with pytest.raises(DataError) as err:
        load_model(path)
    assert long_name in str(err.value)


@pytest.mark.parametrize("text, expected", [
    ("1073741824", 1 << 30), ("2GB", 2e9), ("2GiB", 2 << 30), ("2g", 2 << 30), ("500 MB", 5e8), ("1.5kB", 1500),
    ("none", math.inf), ("unlimited", math.inf)])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "2XB", "-1GB", "0", "GB", "1..2MB"])
def test_bad_sizes(text):
    from kerahep.errors import ConfigError

    with pytest.raises(ConfigError, match="size"):
        parse_size(text)


def test_limits_follow_from_the_weights_limit():
    assert ModelLimits.from_size("1GiB") == ModelLimits()
    big = ModelLimits.from_size("8GiB")
    assert (big.config, big.assets) == (512 * MiB, 2048 * MiB)
    assert not ModelLimits.from_size("none").bounded


# ---------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One toy run for the command tests (a few seconds); the commands are refused before writing."""
    import toytask
    from kerahep.training import train

    toytask.register()
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("toyrun"))
    try:
        return train(toytask.ToyTask().preset()).run_dir.resolve()
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_commands_take_max_model_size(toy_run, command, capsys, monkeypatch):
    import importlib

    monkeypatch.delenv(ENV, raising=False)
    main = importlib.import_module(f"kerahep.commands.{command}").main
    extra = {"evaluate": [], "predict": ["some.csv"], "export": ["--format", "saved_model"]}[command]
    code = cli.run(main, ["--run", str(toy_run), "--max-model-size", "16B", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{toy_run / 'model.keras'}" in err and "the limit is 16B" in err and "--max-model-size" in err
    assert ENV not in os.environ  # the setting ends with the command
    with pytest.raises(SystemExit) as exit_:
        main(["--run", str(toy_run), "--max-model-size", "lots", *extra])
    assert exit_.value.code == 2 and "cannot read 'lots' as a size" in capsys.readouterr().err


def test_environment_sets_the_process_limit(base, monkeypatch):
    monkeypatch.setenv(ENV, "16B")
    with pytest.raises(DataError, match="the limit is 16B"):
        load_model(base)
    monkeypatch.setenv(ENV, "none")
    assert load_model(base) is not None
