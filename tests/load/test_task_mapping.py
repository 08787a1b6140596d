"""A mapping file's task declaration reaches the endpoints catalog through the loader."""

from __future__ import annotations

import toolkit as tk


def test_ingest_with_a_mapping_that_declares_the_task(tmp_path):
    csv = tmp_path / "scores.csv"
    csv.write_text("id,when,model,yhat\n"
                   "a,2026-12-01T00:00:00Z,eta,12.5\n"
                   "b,2026-12-01T00:01:00Z,eta,13.0\n"
                   "c,2026-12-01T00:02:00Z,,11.0\n", encoding="utf-8")
    mapping = tmp_path / "eta.toml"
    mapping.write_text('table = "requests"\n'
                       'task = { task = "regression", interval_coverage = 0.9 }\n'
                       "[columns]\n"
                       'request_id = "id"\nts = "when"\nendpoint = "model"\nprediction = "yhat"\n',
                       encoding="utf-8")
    con = tk.connect(tmp_path / "case.duckdb")
    report = tk.load(con, csv, mapping=mapping)
    assert con.execute("SELECT endpoint, task, interval_coverage FROM endpoints").fetchall() == [
        ("eta", "regression", 0.9)]
    # the request without an endpoint cannot carry the declaration: said in the load's notes
    (file,) = report.files
    assert any("1 request(s) without an endpoint" in note for note in file.notes)
    assert tk.diagnose.case_view(con).tasks["eta"].task == "regression"
