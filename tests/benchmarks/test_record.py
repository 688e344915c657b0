"""The benchmarks' one record format: every result file carries its commit, date, device, jax version and command,
and benchmarks/README.md is generated from those headers."""
import json
import re

import jax

from benchmarks import index, record


def test_a_record_carries_the_header_and_reads_back(tmp_path):
    path = tmp_path / "throughput_cpu_2026-12-07.json"
    record.write(str(path), {"edp_updates_per_s": 54.5, "cdp_updates_per_s": 51.7},
                 record.header(["benchmarks/speed/throughput.py", "--steps", "5"]))
    head, figures = record.read(str(path))
    assert figures == {"edp_updates_per_s": 54.5, "cdp_updates_per_s": 51.7}
    assert set(head) == {"commit", "date", "device", "jax", "command"}
    assert head["command"] == "python -m benchmarks.speed.throughput --steps 5" and head["jax"] == jax.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", head["date"]) and head["commit"] != ""
    assert ("cores" in head["device"]) == (jax.devices()[0].platform == "cpu")
    assert re.fullmatch(r".*/results/throughput_(cpu|gpu)_\d{4}-\d\d-\d\d\.json", record.dated_path("throughput"))


def test_the_index_has_a_row_per_result_with_its_headline_and_provenance(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    head = dict(commit="abc1234", date="2026-12-07", device="Intel Xeon, avx512f, 2 cores", jax="0.10.2",
                command="python -m benchmarks.speed.vs_official --rounds 3")
    record.write(str(results / "vs_official_cpu_2026-12-07.json"), dict(ratios={"EDP": 2.19, "CDP": 2.26}), head)
    (results / "old.json").write_text(json.dumps(dict(header=dict(commit="unknown", committed_in="be2a031",
                                                                  date="2026-12-05"), figures={"x": 1.5})))
    monkeypatch.setattr(index, "RESULTS", str(results))
    text = index.markdown(index.entries())
    row = next(line for line in text.splitlines() if "vs_official_cpu_2026-12-07.json" in line)
    assert "EDP: 2.19×, CDP: 2.26×" in row and "abc1234" in row and "2026-12-07" in row
    assert "`python -m benchmarks.speed.vs_official --rounds 3`" in row
    old = next(line for line in text.splitlines() if "old.json" in line)
    assert "header unknown, committed in be2a031" in old and "x 1.5" in old
