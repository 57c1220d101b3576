"""higgs_mae predict: HIGGS tables (labelled or not) scored by a trained smoke run, joined to
their lines; the written CSV and Parquet outputs; the real LightGBM HIGGS files; bad inputs."""

from __future__ import annotations

import dataclasses
import gzip
import json

import numpy as np
import pytest

from kerahep.data import higgs as hr
from kerahep.errors import DataError
from kerahep.prediction import open_run, predict_files, read_provenance
from kerahep.registry import get_task

TASK = get_task("higgs_mae")


@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The shared smoke run of the task (``run_dir``, ``config``) and the run loaded for scoring."""
    shared = smoke_run(TASK.name)
    return shared, open_run(shared.run_dir)


def _run(smoke, **kw):
    """The smoke run loaded once, with other predict settings (``chunk_size``, ``embedding``, ...)."""
    return dataclasses.replace(smoke[1], **kw)


@pytest.fixture(scope="module")
def twin(smoke):
    result, _ = smoke
    return TASK.resolve_inputs(result.config).files[0]


def _collect(run, path):
    chunks = list(TASK.predict_file(run, path))
    assert chunks, "predict_file yielded nothing"
    keys = list(chunks[0])
    for c in chunks:  # the same columns, dtypes and trailing shapes in every chunk
        assert list(c) == keys
        assert {k: (v.dtype, v.shape[1:]) for k, v in c.items()} == {k: (v.dtype, v.shape[1:])
                                                                     for k, v in chunks[0].items()}
        assert len({len(v) for v in c.values()}) == 1
    return chunks, {k: np.concatenate([c[k] for c in chunks]) for k in keys}


def _expected(run, path):
    """What training's reader and model give on every line of ``path``: (labels, features, scores)."""
    raw_x, y = hr.read_higgs(path, features=run.config.data.features)
    return y, raw_x, run.models["model"].predict(raw_x, batch_size=64, verbose=0).reshape(-1)


def _same_features_as_the_reader(path, chunk_size=100):
    """predict parses every line to the same float32 values as training's reader."""
    from kerahep.tasks.higgs_mae.predict import iter_table, sniff

    fmt, labelled = sniff(path)
    assert labelled
    raw, y = hr.read_higgs(path, features="raw")
    parts = list(iter_table(fmt, labelled, chunk_size))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), raw)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), y)
    assert len(parts) > 1
    sizes = [len(p[1]) for p in parts]
    assert [p[2] for p in parts] == list(np.cumsum([1] + sizes[:-1]))  # contiguous 1-based first lines


def test_twin_rows_align_and_scores_equal_the_model(smoke, twin):
    result, _ = smoke
    run = _run(smoke, batch_size=17, chunk_size=50)
    _, out = _collect(run, twin)
    y, _, want = _expected(run, twin)
    assert list(out) == ["line", "score", "label"]
    assert out["line"].dtype == np.int64 and out["score"].dtype == np.float32 and out["label"].dtype == np.float32
    np.testing.assert_array_equal(out["line"], np.arange(1, len(y) + 1))  # 1-based lines, file order
    np.testing.assert_array_equal(out["label"], y)
    np.testing.assert_allclose(out["score"], want, rtol=1e-5, atol=1e-6)
    _same_features_as_the_reader(twin)
    # the test events of training's own pipeline get the scores training stored for them
    data = TASK.load_data(result.config)
    by_row = {r.tobytes(): i for i, r in enumerate(hr.read_higgs(twin, features="raw")[0])}
    idx = np.array([by_row[r.tobytes()] for r in data.raw_test])
    stored = smoke[1].result.test_scores[result.config.model.final_stage]
    np.testing.assert_allclose(out["score"][idx], stored, rtol=1e-5, atol=1e-6)


def test_unlabelled_table_gives_the_same_scores_without_labels(smoke, twin, tmp_path):
    result, _ = smoke
    run = _run(smoke, chunk_size=40)
    raw, y = hr.read_higgs(twin, features="raw")
    want = run.models["model"].predict(hr.transform(raw, run.config.data.features), verbose=0).reshape(-1)
    tab = tmp_path / "unlabelled.csv.gz"
    with gzip.open(tab, "wt") as f:  # tab separated, the 28 features only
        np.savetxt(f, raw.astype(np.float64), fmt="%.9g", delimiter="\t")
    space = tmp_path / "unlabelled.txt"
    np.savetxt(space, raw.astype(np.float64), fmt="%.9g", delimiter="  ")
    for path in (tab, space):
        _, out = _collect(run, path)
        assert list(out) == ["line", "score"]
        np.testing.assert_array_equal(out["line"], np.arange(1, len(y) + 1))
        np.testing.assert_allclose(out["score"], want, rtol=1e-5, atol=1e-6)


def test_small_chunks_bound_memory_and_concatenate_to_one_chunk(smoke, twin):
    """Blocks of about chunk_size / (threads + 1) lines, cut by size (that many times the
    first line's bytes) at a line end: the blocks in flight hold about chunk_size lines."""
    from kerahep.data.higgs import PARSE_THREADS, sniff
    from kerahep.tasks.higgs_mae.predict import MAX_BLOCK_LINES, block_lines

    result, _ = smoke
    small, big = _run(smoke, chunk_size=48), _run(smoke, chunk_size=1 << 20)
    chunks, out = _collect(small, twin)
    whole, ref = _collect(big, twin)
    per_block = block_lines(48)
    assert per_block == 48 // (PARSE_THREADS + 1) and block_lines(1 << 20) == MAX_BLOCK_LINES
    assert len(ref["line"]) <= MAX_BLOCK_LINES and len(whole) == 1
    fmt = sniff(twin)
    with (hr.gzip_open if fmt.gzip else open)(twin, "rb") as f:
        lengths = np.array([len(line) for line in f])
    budget = per_block * lengths[0] + lengths.max()  # a block's bytes: the size, plus a carried partial line
    for c in chunks:
        first, n = int(c["line"][0]), len(c["line"])
        assert lengths[first - 1:first - 1 + n].sum() <= budget
    assert len(chunks) > 1 and max(len(c["line"]) for c in chunks) <= 1.5 * per_block
    for k in ref:  # scores of other batch shapes may differ in the last bit of float32
        if k == "score":
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(out[k], ref[k])


def test_embedding_is_the_pooled_pretrained_encoder(smoke, twin):
    result, _ = smoke
    run = _run(smoke, chunk_size=64, embedding=True)
    _, out = _collect(run, twin)
    _, x, _ = _expected(run, twin)
    tokens = run.models["encoder"].predict(x, verbose=0)
    want = tokens.reshape(len(x), -1) if result.config.model.pooling == "flatten" else tokens.mean(axis=1)
    assert out["embedding"].dtype == np.float32 and out["embedding"].shape == want.shape
    np.testing.assert_allclose(out["embedding"], want, rtol=1e-5, atol=1e-5)


def test_written_csv_and_parquet_join_to_the_input(smoke, twin, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    result, _ = smoke
    run = _run(smoke, chunk_size=50, embedding=True)
    _, ref = _collect(run, twin)
    n_emb = ref["embedding"].shape[1]
    csv = predict_files(result.run_dir, [twin], out=tmp_path / "csv", chunk_size=50, embedding=True)
    assert csv[0]["output"].endswith("HIGGS.csv") and csv[0]["rows"] == len(ref["line"])  # default format: csv
    table = pd.read_csv(csv[0]["output"], comment="#")
    assert list(table.columns) == ["line", "score", "label"] + [f"embedding_{i}" for i in range(n_emb)]
    np.testing.assert_array_equal(table["line"], ref["line"])
    np.testing.assert_allclose(table["score"], ref["score"], rtol=1e-6)
    np.testing.assert_array_equal(table["label"], ref["label"])
    assert read_provenance(csv[0]["output"])["task"] == "higgs_mae"
    pqt = predict_files(result.run_dir, [twin], out=tmp_path / "pq", fmt="parquet", chunk_size=50)
    t = pq.read_table(pqt[0]["output"])
    assert t.column_names == ["line", "score", "label"] and t.num_rows == len(ref["line"])
    np.testing.assert_array_equal(t.column("line").to_numpy(), ref["line"])
    assert str(t.schema.field("score").type) == "float"  # float32 kept as float32
    # other chunk sizes: other batch shapes of the compiled model call, so round-off differs (1 ulp)
    np.testing.assert_allclose(t.column("score").to_numpy(), ref["score"], rtol=1e-6)
    meta = json.loads(t.schema.metadata[b"kerahep"])
    assert meta["run_id"] == result.run_dir.name and meta["input"]["path"] == str(twin.resolve())


@pytest.mark.realdata
@pytest.mark.parametrize("name,rows,signal", [("binary.test", 500, None), ("binary.train", 7000, 3716)])
def test_real_lightgbm_higgs_files_join_line_by_line(smoke, realdata, tmp_path, name, rows, signal):
    import pyarrow.parquet as pq

    result, _ = smoke
    path = realdata("higgs", name)
    run = _run(smoke, chunk_size=1000)
    chunks, out = _collect(run, path)
    y, _, want = _expected(run, path)
    assert len(out["line"]) == rows and max(len(c["line"]) for c in chunks) <= 1000
    np.testing.assert_array_equal(out["line"], np.arange(1, rows + 1))
    np.testing.assert_array_equal(out["label"], y)
    if signal is not None:
        assert int(out["label"].sum()) == signal
    _same_features_as_the_reader(path)
    np.testing.assert_allclose(out["score"], want, rtol=1e-5, atol=1e-6)
    # the first column of each line is the label copied: line numbers join back to the file
    with open(path) as f:
        first = [float(line.split("\t")[0]) for line in f]
    np.testing.assert_array_equal(out["label"], np.array(first, np.float32))
    written = predict_files(result.run_dir, [path], out=tmp_path, fmt="parquet", chunk_size=1000)
    assert written[0]["output"].endswith(f"{name}.parquet") and written[0]["rows"] == rows
    np.testing.assert_allclose(pq.read_table(written[0]["output"]).column("score").to_numpy(), out["score"],
                               rtol=1e-6)  # another chunk size: round-off of other batch shapes only


def test_empty_file_gives_the_columns_and_no_rows(smoke, tmp_path):
    result, _ = smoke
    path = tmp_path / "empty.csv"
    path.write_text("")
    chunks, out = _collect(_run(smoke), path)
    assert len(chunks) == 1 and list(out) == ["line", "score"] and len(out["line"]) == 0
    assert out["line"].dtype == np.int64 and out["score"].dtype == np.float32


def _table(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("case,line", [
    ("27 columns", 1), ("line 7 has 30 columns", 7), ("line 6 has a word", 6), ("line 5 has nan", 5),
    ("label 2 at line 9", 9), ("unlabelled with an empty line 4", 4), ("line 3 beyond float32", 3),
])
def test_bad_tables_raise_data_error_naming_file_and_line(smoke, tmp_path, case, line):
    result, _ = smoke
    good = ",".join(["1"] + ["0.5"] * 28)
    lines = [good] * 12
    labelled = not case.startswith("unlabelled")
    if not labelled:
        lines = [",".join(["0.5"] * 28)] * 12
    bad = {"27 columns": ",".join(["0.5"] * 27), "line 7 has 30 columns": good + ",1",
           "line 6 has a word": good.replace("0.5", "abc", 1), "line 5 has nan": good.replace("0.5", "nan", 1),
           "label 2 at line 9": "2" + good[1:], "unlabelled with an empty line 4": "",
           "line 3 beyond float32": good.replace("0.5", "1e39", 1)}[case]
    lines[line - 1] = bad
    path = _table(tmp_path, "bad.csv", lines)
    run = _run(smoke, chunk_size=2)  # the bad line is past the first chunks
    with pytest.raises(DataError) as err:
        list(TASK.predict_file(run, path))
    assert err.value.path == f"{path}, line {line}", str(err.value)


def test_missing_directory_and_binary_inputs_raise_data_error(smoke, tmp_path):
    result, _ = smoke
    run = _run(smoke)
    binary = tmp_path / "garbage.csv.gz"
    binary.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    for path in (tmp_path / "missing.csv", tmp_path, binary):
        with pytest.raises(DataError) as err:
            list(TASK.predict_file(run, path))
        assert str(path) in err.value.path
    bad = _table(tmp_path, "bad.csv", [",".join(["1"] + ["0.5"] * 28)] * 3 + ["x"])
    with pytest.raises(DataError, match="bad.csv, line 4"):
        predict_files(result.run_dir, [bad], out=tmp_path / "out", chunk_size=2)
    assert not list((tmp_path / "out").glob("*")), "a failed file left an output behind"
