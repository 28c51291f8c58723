"""helpers.machine: verdicts from made-up measurements, JSON parsing, and one real run."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import machine
from helpers.machine import Measurements

ROOT = Path(__file__).resolve().parents[1]


def healthy(**changes):
    values = dict(
        python="3.11.7 on Linux",
        cpu_count=2,
        affinity=2,
        process_cpu_count=None,
        quota=None,
        usable=2,
        speedup={1: 1.0, 2: 1.85},
        startup={"fork": 0.004, "spawn": 0.15, "forkserver": 0.03},
        copy_gbs=12.0,
        transfer={"pipe": 0.02, "queue": 0.02, "shared memory": 0.9},
    )
    values.update(changes)
    return Measurements(**values)


def statuses(m):
    return {(v.chapters, v.status) for v in machine.verdicts(m)}


def test_a_healthy_two_cpu_machine_passes():
    results = machine.verdicts(healthy())
    assert all(v.status == "ok" for v in results)
    assert machine.exit_status(results) == 0


def test_one_cpu_limits_the_demos_without_failing_them():
    m = healthy(usable=1, cpu_count=8, affinity=1, speedup={1: 1.0})
    assert (machine.ONE_CPU_CHAPTERS, "limited") in statuses(m)
    assert not any(s == "fail" for _, s in statuses(m))  # no speed-up is expected at all
    assert machine.exit_status(machine.verdicts(m)) == 1


def test_a_busy_machine_fails_the_speedup_demos():
    m = healthy(speedup={1: 1.0, 2: 1.1})
    assert ("00, 02, 09", "fail") in statuses(m)
    assert machine.exit_status(machine.verdicts(m)) == 1


def test_a_quota_below_two_cpus_that_the_count_misses_fails():
    assert ("00, 02, 09", "fail") in statuses(healthy(quota=1.0))
    assert all(s == "ok" for _, s in statuses(healthy(quota=4.0)))


def test_start_up_verdicts():
    assert ("09", "fail") in statuses(healthy(startup={"fork": 0.05, "spawn": 0.1}))
    assert ("09", "limited") in statuses(healthy(startup={"spawn": 0.1}))  # no fork (macOS...)


@pytest.mark.parametrize(
    ("transfer", "words"),
    [
        ({"queue": 0.02, "shared memory": 0.1}, "only 10% of a copy"),
        ({"queue": 0.5, "shared memory": 0.9}, "a queue reaches 50%"),
        ({"queue": 0.18, "shared memory": 0.3}, "not clearly faster than a queue"),
        ({}, "not measured"),
    ],
)
def test_transfer_verdicts(transfer, words):
    results = machine.verdicts(healthy(transfer=transfer))
    failed = [v for v in results if v.status == "fail"]
    assert len(failed) == 1 and failed[0].chapters == "06, 09" and words in failed[0].message


def test_exit_status_rejects_unknown_statuses():
    with pytest.raises(ValueError, match="status"):
        machine.exit_status([machine.Verdict("09", "maybe", "")])
    with pytest.raises(TypeError, match="Measurements"):
        machine.verdicts({"usable": 2})


def test_measurements_round_trip_through_json():
    m = healthy()
    again = Measurements.from_json(m.to_json())
    assert again == m and again.speedup[2] == 1.85  # int keys come back as ints


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"colour": 1}', "unknown fields"),
        ('{"usable": 0}', "usable"),
        ('{"speedup": [1]}', "malformed"),
    ],
)
def test_from_json_rejects_malformed_input(text, words):
    with pytest.raises(ValueError, match=words):
        Measurements.from_json(text)


def test_report_names_every_verdict():
    m = healthy(speedup={1: 1.0, 2: 1.1})
    results = machine.verdicts(m)
    report = machine.format_report(m, results)
    assert "Exit status 1" in report
    assert all(v.message in report for v in results)


def test_from_json_command_line(tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(healthy().to_json())
    assert machine.main(["--from-json", str(path)]) == 0
    assert "Exit status 0" in capsys.readouterr().out


def test_smoke_the_real_check_runs_within_its_budget():
    result = subprocess.run(
        [sys.executable, "-m", "helpers.machine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""
    for heading in ("CPUs", "speed-up", "Start + join", "Verdicts", "Exit status"):
        assert heading in result.stdout
