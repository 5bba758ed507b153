"""The time-to-result benchmark's pieces: a measurement in a fresh process gives a well-formed
record, the tables are built from the records, and a library that cannot be imported is skipped
with a message. Only the engine runs here: Pyro and NumPyro are not needed."""

import doctest
import json
import math

import pytest

from benchmarks import time_to_result, ttr_timing
from benchmarks.ttr_timing import NutsPlan, SviPlan


@pytest.mark.parametrize("module", [ttr_timing, time_to_result])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_engine_measurements_in_fresh_processes_give_well_formed_records():
    svi_job = {"kind": "svi", "workload": "svi_small", "impl": "engine"}
    svi_job["plan"] = {"first": 20, "blocks": 2, "per_block": 5}
    nuts_job = {"kind": "nuts", "workload": "nuts_eight_schools", "chains": 1, "impl": "engine"}
    nuts_job["plan"] = {"num_warmup": 10, "num_samples": 10}
    svi = time_to_result.run_child(svi_job, [], timeout=300)
    nuts = time_to_result.run_child(nuts_job, [], timeout=300)
    assert "error" not in svi and "error" not in nuts, (svi, nuts)

    assert svi["elbo"] == "Trace_ELBO" and len(svi["blocks_ms"]) == 2
    assert 0 < svi["first_step_s"] <= svi["max_pause_s"] <= svi["first_s"]
    assert svi["steady_ms"] > 0 and svi["first_cpu_s"] > 0
    # The loss of svi_small near its start: a few hundred nats (100 points), finite.
    assert 0 < svi["loss_last_block"] < 1e4

    assert 0 < nuts["max_pause_s"] <= nuts["wall_s"] and nuts["cpu_s"] > 0
    # Ten draws give no meaningful ESS (the estimate can even be negative): only its presence.
    assert math.isfinite(nuts["min_ess"])
    assert nuts["ess_per_s"] == pytest.approx(nuts["min_ess"] / nuts["wall_s"])

    table = time_to_result.markdown([svi, nuts])
    assert f"| svi_small | first 20 steps (s) | {svi['first_s']:.2f} | — |" in table
    assert f"| nuts_eight_schools | 1 | wall (s) | {nuts['wall_s']:.1f} | — |" in table


def test_a_failed_measurement_is_a_record_with_its_error():
    job = {"kind": "svi", "workload": "no_such_workload", "impl": "engine"}
    record = time_to_result.run_child({**job, "plan": {"first": 1}}, [], timeout=300)
    assert record["workload"] == "no_such_workload" and "error" in record
    assert "failed" in time_to_result.markdown([record])


def test_missing_libraries_are_skipped_with_a_message(monkeypatch, tmp_path, capsys):
    taken = []
    monkeypatch.setattr(time_to_result, "available", lambda impl, path: impl == "engine")
    monkeypatch.setattr(
        time_to_result,
        "run_child",
        lambda job, path, timeout: taken.append(job) or {**job, "first_s": 1.0, "steady_ms": 1.0},
    )
    out = tmp_path / "ttr.json"
    impls = ["--impls", "engine", "pyro", "numpyro"]
    time_to_result.main(["--smoke", *impls, "--only", "svi_small", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "skipping pyro: pyro cannot be imported" in printed
    assert "skipping numpyro: numpyro cannot be imported" in printed
    assert [job["impl"] for job in taken] == ["engine"]
    assert taken[0]["plan"] == {"first": 50, "blocks": 2, "per_block": 10}
    record = json.loads(out.read_text())
    assert record["smoke"] is True and record["threads"] == 1
    assert {"date", "machine", "versions", "load_average"} <= set(record)
    assert record["command"].endswith("--only svi_small --out " + str(out))
    assert record["versions"]["torch"]


def test_plans_follow_the_workloads_definitions():
    # WORKLOADS.md: 500 warm-up iterations and 1000 draws; the issue: the first 1,000 SVI steps.
    assert NutsPlan() == NutsPlan(num_warmup=500, num_samples=1000)
    assert SviPlan().first == 1000
