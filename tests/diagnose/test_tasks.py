"""Task per endpoint: declared in the endpoints catalog, else inferred in the engine."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd

from tests.diagnose.conftest import make_case
from toolkit.diagnose._case import case_view

tasks_module = importlib.import_module("toolkit.diagnose._tasks")
TS = pd.Timestamp("2026-03-01", tz="UTC")


def _requests(endpoint, predictions, **extra):
    n = len(predictions)
    return pd.DataFrame({"request_id": [f"{endpoint}{i}" for i in range(n)], "ts": TS,
                         "endpoint": endpoint, "prediction": predictions, **extra})


def test_each_endpoint_gets_its_inferred_task():
    rng = np.random.default_rng(0)
    frames = [
        _requests("bin", ["0", "1"] * 50),
        _requests("multi", ["cat", "dog", "cow", "dog"] * 25),
        _requests("reg", rng.normal(50, 10, 100).round(3)),
        # integers, but more distinct values than classes could be: a count regression
        _requests("counts", np.arange(300)),
        _requests("digits", [str(d) for d in range(10)] * 10),
    ]
    gen = pd.DataFrame({"request_id": [f"g{i}" for i in range(40)], "ts": TS, "endpoint": "gen",
                        "input_tokens": 100, "output_tokens": 20})
    con = make_case(requests=pd.concat([*frames, gen], ignore_index=True))
    tasks = case_view(con).tasks
    assert {e: t.task for e, t in tasks.items()} == {
        "bin": "binary", "multi": "multiclass", "reg": "regression", "counts": "regression",
        "digits": "multiclass", "gen": "generative"}
    assert tasks["multi"].classes == ("cat", "cow", "dog")
    assert tasks["digits"].classes == tuple(str(d) for d in range(10))
    assert tasks["reg"].classes == () and tasks["gen"].classes == ()
    assert all(t.source == "inferred" for t in tasks.values())
    assert tasks["counts"].requests == 300


def test_labels_add_classes_and_decide_numbers():
    # predictions only ever say two classes; the labels show a third: multiclass
    requests = _requests("e", ["a", "b"] * 30)
    labels = pd.DataFrame({"request_id": requests["request_id"], "label": ["a", "b", "c"] * 20})
    tasks = case_view(make_case(requests=requests, labels=labels)).tasks
    assert tasks["e"].task == "multiclass" and tasks["e"].classes == ("a", "b", "c")
    # integral predictions with fractional labels: a regression
    requests = _requests("r", [1, 2, 3] * 20)
    labels = pd.DataFrame({"request_id": requests["request_id"], "label": [1.5, 2.25, 3] * 20})
    assert case_view(make_case(requests=requests, labels=labels)).tasks["r"].task == "regression"
    # fractional predictions but a label that is no number: classes, not a regression
    requests = _requests("x", [0.5, 1.5] * 30)
    labels = pd.DataFrame({"request_id": requests["request_id"],
                           "label": ["0.5"] * 59 + ["unknown"]})
    x = case_view(make_case(requests=requests, labels=labels)).tasks["x"]
    assert x.task == "multiclass" and x.classes == ("0.5", "1.5", "unknown")


def test_labels_are_profiled_per_endpoint():
    requests = pd.concat([_requests("one", ["a", "b"] * 20), _requests("two", ["a", "b"] * 20)],
                         ignore_index=True)
    # only endpoint two's labels hold a third class
    label = ["a"] * 40 + ["a", "b", "c", "b"] * 10
    con = make_case(requests=requests, labels=pd.DataFrame(
        {"request_id": requests["request_id"], "label": label}))
    tasks = case_view(con).tasks
    assert tasks["one"].task == "binary" and tasks["one"].classes == ("a", "b")
    assert tasks["two"].task == "multiclass" and tasks["two"].classes == ("a", "b", "c")


def test_a_declaration_wins_and_carries_its_facts():
    requests = pd.concat([_requests("e", ["1", "2", "3"] * 20),
                          _requests("f", ["0", "1"] * 20)], ignore_index=True)
    endpoints = pd.DataFrame({"endpoint": ["e", "f", "declared_only"],
                              "task": ["regression", "binary", "multiclass"],
                              "positive_class": [None, "1", None],
                              "classes": [None, None, json.dumps(["z", "y", "x"])],
                              "interval_coverage": [0.9, None, None]})
    tasks = case_view(make_case(requests=requests, endpoints=endpoints)).tasks
    assert tasks["e"].task == "regression" and tasks["e"].source == "declared"
    assert tasks["e"].interval_coverage == 0.9 and tasks["e"].classes == ()
    assert tasks["f"].positive_class == "1" and tasks["f"].classes == ("0", "1")
    assert tasks["declared_only"].classes == ("x", "y", "z")
    assert tasks["declared_only"].requests == 0


def test_requests_without_endpoint_and_the_main_task():
    requests = pd.DataFrame({"request_id": [f"r{i}" for i in range(90)], "ts": TS,
                             "prediction": ["a", "b", "c"] * 30})
    view = case_view(make_case(requests=requests))
    assert list(view.tasks) == [None]
    assert view.task.task == "multiclass" and view.task.endpoints == (None,)
    # two multiclass endpoints outweigh one binary endpoint: merged classes, both endpoints
    requests = pd.concat([_requests("m1", ["a", "b", "c"] * 10), _requests("m2", ["c", "d", "e"] * 10),
                          _requests("b", ["0", "1"] * 20)], ignore_index=True)
    main = case_view(make_case(requests=requests)).task
    assert main.task == "multiclass" and main.requests == 60
    assert main.classes == ("a", "b", "c", "d", "e") and set(main.endpoints) == {"m1", "m2"}


def test_a_case_without_requests_is_binary_by_default():
    view = case_view(make_case())
    assert view.tasks == {} and view.task.task == "binary"


def test_class_scores_reads_any_class_name():
    con = make_case(requests=pd.DataFrame({
        "request_id": ["a", "b", "c"], "ts": TS,
        "scores": [json.dumps({'it"s': 0.25, "a/b~c": 0.75}), json.dumps({"a/b~c": 1.0}), None]}))
    view = case_view(con)
    t = view.table("requests")
    p = tasks_module.class_scores(t.scores, ('it"s', "a/b~c"))
    got = t.select("request_id", q=p[0], r=p[1]).order_by("request_id").execute()
    assert got["q"].tolist()[:2] == [0.25, 0.0] and got["r"].tolist()[:2] == [0.75, 1.0]
    assert got[["q", "r"]].iloc[2].isna().all()  # no scores: unknown, not 0


def test_info_shows_the_task_per_endpoint(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import toolkit as tk

    requests = pd.concat([_requests("<b>fraud</b>", ["0", "1"] * 20),
                          _requests("animals", ["ant", "bee", "cat"] * 20)], ignore_index=True)
    db = tmp_path / "case.duckdb"
    con = tk.connect(db)
    for name, frame in (("requests", requests), ("endpoints", pd.DataFrame(
            {"endpoint": ["<b>fraud</b>"], "task": ["binary"], "positive_class": ["1"]}))):
        tk.load(con, frame, table=name)
    summary = tk.summarize(con)
    assert summary.tasks == [
        {"endpoint": "animals", "task": "multiclass", "source": "inferred",
         "positive_class": None, "classes": ["ant", "bee", "cat"], "interval_coverage": None,
         "requests": 60},
        {"endpoint": "<b>fraud</b>", "task": "binary", "source": "declared",
         "positive_class": "1", "classes": ["0", "1"], "interval_coverage": None,
         "requests": 40}]
    page = summary._repr_html_()
    assert "&lt;b&gt;fraud&lt;/b&gt;: binary (declared, positive 1)" in page
    assert "<b>fraud</b>" not in page
    con.close()
    forensics = shutil.which("forensics", path=str(Path(sys.executable).parent))
    out = subprocess.run([forensics, "info", "--db", str(db), "--json"], capture_output=True,
                         text=True, check=True, env={"CI": "true", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout)["tasks"] == summary.tasks


def test_a_mapping_declares_the_task_and_its_facts():
    import pytest

    from toolkit.errors import MappingError
    from toolkit.load.mapping import Mapping, declare_task

    assert Mapping.from_dict({"task": "regression"}).task == {"task": "regression"}
    spec = Mapping.from_dict({"task": {"task": "multiclass", "classes": ["a", "b", 3]}}).task
    assert spec == {"task": "multiclass", "classes": ["a", "b", "3"]}
    section = Mapping.from_dict({"files": {"reg*": {"task": "regression"}}})
    assert section.for_file("reg-1.csv").task == {"task": "regression"}
    assert section.for_file("other.csv").task is None
    for bad, words in (({"task": "ranking"}, "'ranking' is not one of"),
                       ({"task": {"task": "multiclass", "positive": "1"}},
                        "task.positive belongs to a binary task"),
                       ({"task": {"task": "regression", "interval_coverage": 1.5}},
                        "between 0 and 1"),
                       ({"task": {"task": "multiclass", "classes": ["only"]}}, "at least two"),
                       ({"task": {"kind": "binary"}}, "task must be one of")):
        with pytest.raises(MappingError, match="my.toml") as info:
            Mapping.from_dict(bad, origin="my.toml")
        assert words in str(info.value)

    requests = pd.concat([_requests("e1", ["1.5", "2"] * 20), _requests("e2", ["3", "4"] * 20),
                          pd.DataFrame({"request_id": ["x"], "ts": [TS], "prediction": ["1"]})],
                         ignore_index=True)
    con = make_case(requests=requests)
    (load_id,) = con.execute("SELECT max(load_id) FROM loads").fetchone()
    mapping = Mapping.from_dict({"task": {"task": "regression", "interval_coverage": 0.8}})
    notes = declare_task(con, mapping, load_id)
    assert len(notes) == 1 and "1 request(s) without an endpoint" in notes[0]
    tasks = case_view(con).tasks
    assert {e: (t.task, t.source, t.interval_coverage) for e, t in tasks.items()} == {
        "e1": ("regression", "declared", 0.8), "e2": ("regression", "declared", 0.8),
        None: ("binary", "inferred", None)}
    # declared again: replaced, one row per endpoint; a named endpoint only
    named = Mapping.from_dict({"task": {"task": "multiclass", "endpoint": "e2",
                                        "classes": ["3", "4", "5"]}})
    assert declare_task(con, named, load_id) == ()
    rows = con.execute("SELECT endpoint, task, CAST(classes AS VARCHAR) FROM endpoints "
                       "ORDER BY endpoint").fetchall()
    assert rows == [("e1", "regression", None), ("e2", "multiclass", '["3", "4", "5"]')]
    assert case_view(con).tasks["e2"].classes == ("3", "4", "5")
