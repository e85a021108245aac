"""Tests of bench/time_to_quality: the turns, the clocks, the binary."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from bench import time_to_quality_lib

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BINARY = os.path.join(REPOSITORY, "bench", "time_to_quality.py")

# A trainer stand-in: appends {"step", "negative_elbo"} from VALUES, one
# record per STEP_SECONDS of real time, then sleeps (or exits with EXIT).
_FAKE_TRAINER = textwrap.dedent(
    """
    import json, sys, time
    log, values, step_seconds, exit_code = sys.argv[1:5]
    for step, value in enumerate(json.loads(values), start=1):
        time.sleep(float(step_seconds))
        with open(log, "a") as file:
            record = {"step": step, "negative_elbo": value}
            file.write(json.dumps(record) + "\\n")
    if exit_code != "none":
        sys.exit(int(exit_code))
    time.sleep(600)
    """
)


def _contender(tmp_path, name, values, step_seconds=0.0, exit_code="none"):
    log = tmp_path / f"{name}.jsonl"
    return time_to_quality_lib.Contender(
        name=name,
        command=[
            sys.executable,
            "-c",
            _FAKE_TRAINER,
            str(log),
            json.dumps(values),
            str(step_seconds),
            exit_code,
        ],
        read_records=lambda: time_to_quality_lib.json_lines(str(log)),
        output_path=str(tmp_path / f"{name}.out"),
    )


def _process_state(pid: int) -> str:
    """'T' when stopped; R, S, ... otherwise ('' once gone)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


class _FakeClock:
    """A clock that moves one second per poll; the polls wait for real."""

    def __init__(self, real_seconds=0.05, on_poll=None):
        self.now = 0.0
        self.real_seconds = real_seconds
        self.on_poll = on_poll

    def clock(self):
        return self.now

    def sleep(self, seconds):
        time.sleep(self.real_seconds)
        if self.on_poll:
            self.on_poll()
        self.now += seconds


def test_one_contender_times_each_threshold(tmp_path):
    fake = _FakeClock(real_seconds=0.3)
    results = time_to_quality_lib.race(
        [_contender(tmp_path, "a", [150.0, 120.0, 95.0, 89.0])],
        thresholds=[100.0, 90.0],
        window_seconds=10.0,
        max_minutes=5.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )["a"]
    assert results["outcome"] == "reached every threshold"
    assert results["thresholds"]["100"]["step"] == 3
    assert results["thresholds"]["90"]["step"] == 4
    assert results["thresholds"]["90"]["negative_elbo"] == 89.0
    assert 0 < results["thresholds"]["100"]["minutes"]
    assert results["best_validation"]["step"] == 4
    assert results["exit_code"] is not None  # stopped at the end


def test_only_one_contender_runs_at_a_time_and_turns_pass(
    tmp_path, monkeypatch
):
    contenders = [
        _contender(tmp_path, "a", [200.0] * 3 + [80.0], step_seconds=0.2),
        _contender(tmp_path, "b", [200.0] * 3 + [80.0], step_seconds=0.2),
    ]
    pids = []
    running_counts = []

    def on_poll():
        if not pids:
            return
        states = [_process_state(pid) for pid in pids]
        running_counts.append(
            sum(state not in ("T", "", "Z") for state in states)
        )

    fake = _FakeClock(real_seconds=0.1, on_poll=on_poll)
    original = time_to_quality_lib._Running.__init__

    def record_pid(self, contender, thresholds):
        original(self, contender, thresholds)
        pids.append(self.process.pid)

    monkeypatch.setattr(time_to_quality_lib._Running, "__init__", record_pid)
    results = time_to_quality_lib.race(
        contenders,
        thresholds=[100.0],
        window_seconds=2.0,
        max_minutes=5.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert max(running_counts) == 1  # never both at once
    for name in ("a", "b"):
        assert results[name]["outcome"] == "reached every threshold"
        assert results[name]["thresholds"]["100"]["step"] == 4
    # Each clock counts its own turns only: together they add up to the
    # polls of the race, not twice that.
    total = results["a"]["minutes"] + results["b"]["minutes"]
    assert total == pytest.approx(fake.now / 60.0, abs=0.05)
    ratio = time_to_quality_lib.ratios(results, "a", "b")
    assert set(ratio) == {"100"}


def test_an_exit_or_the_time_limit_ends_a_contender(tmp_path):
    fake = _FakeClock(real_seconds=0.05)
    results = time_to_quality_lib.race(
        [
            _contender(tmp_path, "quits", [150.0], exit_code="3"),
            _contender(tmp_path, "slow", [150.0]),
        ],
        thresholds=[100.0],
        window_seconds=5.0,
        max_minutes=0.5,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert results["quits"]["outcome"] == "exited"
    assert results["quits"]["exit_code"] == 3
    assert results["quits"]["thresholds"]["100"] is None
    assert results["quits"]["best_validation"]["negative_elbo"] == 150.0
    assert results["slow"]["outcome"] == "time limit"
    assert results["slow"]["minutes"] == pytest.approx(0.5, abs=0.02)
    assert time_to_quality_lib.ratios(results, "quits", "slow") == {}


def test_race_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        time_to_quality_lib.race([], [100.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="> 0"):
        time_to_quality_lib.race(
            [_contender(tmp_path, "a", [1.0])], [100.0], 0.0, 1.0
        )


def test_json_lines_skips_a_line_being_written(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"split": "validation", "step": 1, "negative_elbo": 3}\n'
        '{"split": "test", "step": 1, "negative_elbo": 2}\n'
        '{"split": "validation", "st'
    )
    records = time_to_quality_lib.json_lines(str(path), split="validation")
    assert records == [{"split": "validation", "step": 1, "negative_elbo": 3}]
    assert time_to_quality_lib.json_lines(str(tmp_path / "missing")) == []


def _binary(*arguments, timeout=300):
    return subprocess.run(
        [
            sys.executable,
            os.path.join(REPOSITORY, "bench", "time_to_quality.py"),
        ]
        + list(arguments),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPOSITORY,
    )


def test_binary_times_train_py_alone(tmp_path):
    """The main command on tiny synthetic images, to a threshold it passes."""
    output = tmp_path / "report.json"
    result = _binary(
        f"--workdir={tmp_path / 'race'}",
        "--train_flagfile=configs/mnist_smoke.flags",
        "--train_flags=--dataset=synthetic,--train_steps=40,"
        "--max_eval_examples=0,--num_pictures=0",
        "--eval_every_steps=20",
        "--thresholds=100000",
        "--window_seconds=5",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    draw = report["results"]["draw_tf"]
    assert draw["outcome"] == "reached every threshold"
    assert draw["thresholds"]["100000"]["step"] == 20
    assert draw["thresholds"]["100000"]["minutes"] > 0
    assert report["peer"] == "not run: --peer_draw not given"
    assert report["device"]["vector_extensions"]


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--thresholds=ninety"], "--thresholds must be comma-separated"),
        (["--peer_draw=/nonexistent/draw.py"], "--peer_draw=/nonexistent"),
        (["--peer_python=/usr/bin/python3"], "--peer_python and --peer_flags"),
        (["--train_flagfile=/nonexistent.flags"], "no such file"),
        (
            ["--output=/nonexistent/ttq.json"],
            "--output=/nonexistent/ttq.json: directory /nonexistent does not",
        ),
    ],
)
def test_binary_bad_flags_one_line(tmp_path, arguments, message):
    result = _binary(f"--workdir={tmp_path / 'w'}", *arguments, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("time_to_quality.py: error: ")
    assert message in lines[-1]


def test_binary_refuses_a_used_workdir(tmp_path):
    (tmp_path / "old").write_text("x")
    result = _binary(f"--workdir={tmp_path}", timeout=120)
    assert result.returncode == 2
    assert "is not empty" in result.stderr.strip().splitlines()[-1]
    result = _binary(f"--workdir={tmp_path / 'old'}", timeout=120)
    assert result.returncode == 2
    assert "is a file" in result.stderr.strip().splitlines()[-1]
