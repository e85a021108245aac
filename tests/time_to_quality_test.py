"""Tests of bench/time_to_quality: the turns, the clocks, the binary."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bench import time_to_quality_lib

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

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

    def record_pid(self, contender, thresholds, **keywords):
        original(self, contender, thresholds, **keywords)
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


# A resumable trainer stand-in: starts after the step in CHECKPOINT (a
# file, 0 when missing), appends {"step", "negative_elbo"} with the values
# in VALUES_FILE (read at its start), one per STEP_SECONDS, and writes its
# step to CHECKPOINT after every even step.
_RESUMABLE_TRAINER = textwrap.dedent(
    """
    import json, os, sys, time
    log, checkpoint, values_file, step_seconds = sys.argv[1:5]
    start = int(open(checkpoint).read()) if os.path.exists(checkpoint) else 0
    values = json.load(open(values_file))
    for step in range(start + 1, len(values) + 1):
        time.sleep(float(step_seconds))
        with open(log, "a") as file:
            record = {"step": step, "negative_elbo": values[step - 1]}
            file.write(json.dumps(record) + "\\n")
        if step % 2 == 0:
            with open(checkpoint, "w") as file:
                file.write(str(step))
    time.sleep(600)
    """
)


def _resumable(tmp_path, values, resumable=True):
    log, checkpoint = tmp_path / "a.jsonl", tmp_path / "checkpoint"
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))

    def checkpoint_step():
        return int(checkpoint.read_text()) if checkpoint.exists() else 0

    return time_to_quality_lib.Contender(
        name="a",
        command=[
            sys.executable,
            "-c",
            _RESUMABLE_TRAINER,
            str(log),
            str(checkpoint),
            str(values_file),
            "0.3",
        ],
        read_records=lambda: time_to_quality_lib.json_lines(str(log)),
        output_path=str(tmp_path / "a.out"),
        checkpoint_step=checkpoint_step if resumable else None,
    )


def test_a_stopped_race_resumes_from_the_checkpoint(tmp_path):
    clock_log = str(tmp_path / "clock.jsonl")
    log = tmp_path / "a.jsonl"

    def stop_after_five():  # as a kill would, once step 5 is written
        if len(time_to_quality_lib.json_lines(str(log))) >= 5:
            raise KeyboardInterrupt

    def race(fake):
        return time_to_quality_lib.race(
            [contender],
            thresholds=[100.0, 90.0],
            window_seconds=10.0,
            max_minutes=5.0,
            clock=fake.clock,
            sleep=fake.sleep,
            clock_log=clock_log,
        )["a"]

    contender = _resumable(tmp_path, [150.0, 120.0, 110.0, 95.0, 89.0, 85.0])
    with pytest.raises(KeyboardInterrupt):
        race(_FakeClock(real_seconds=0.1, on_poll=stop_after_five))
    events = time_to_quality_lib.json_lines(clock_log)
    assert (tmp_path / "checkpoint").read_text() == "4"
    seen_at = {
        event["validation"]["step"]: event["seconds"]
        for event in events
        if "validation" in event
    }
    checkpoint_seconds = [
        event["seconds"]
        for event in events
        if event.get("checkpoint_step") == 4
    ]
    assert len(checkpoint_seconds) == 1
    assert checkpoint_seconds[0] >= seen_at[4]
    # Step 5 was done after the checkpoint and is lost; the trainer that
    # resumes does it again, differently (89 was a fluke): 90 nats must
    # then come from the resumed run's step 6, not the lost step 5.
    (tmp_path / "values.json").write_text(
        json.dumps([150.0, 120.0, 110.0, 95.0, 91.0, 85.0])
    )
    with open(clock_log, "a") as file:
        file.write('{"contender": "a", "seco')  # a kill mid-line
    fake = _FakeClock(real_seconds=0.1)
    fake.now = 1000.0  # the new process's clock starts anywhere
    results = race(fake)
    assert results["outcome"] == "reached every threshold"
    resumed_minutes = round(checkpoint_seconds[0] / 60.0, 2)
    assert results["resumed"] == [{"from_step": 4, "minutes": resumed_minutes}]
    assert results["thresholds"]["100"] == {
        "minutes": round(seen_at[4] / 60.0, 2),
        "step": 4,
        "epoch": None,
        "negative_elbo": 95.0,
    }
    assert results["thresholds"]["90"]["step"] == 6
    assert results["thresholds"]["90"]["minutes"] > resumed_minutes
    # Its own time: the first run's up to the checkpoint, then the polls
    # of the second (each one second of the fake clock).
    assert results["minutes"] == pytest.approx(
        (checkpoint_seconds[0] + fake.now - 1000.0) / 60.0, abs=0.006
    )
    assert results["best_validation"]["step"] == 6
    steps = [
        record["step"] for record in time_to_quality_lib.json_lines(str(log))
    ]
    assert steps[:5] == [1, 2, 3, 4, 5] and steps[5:7] == [5, 6]
    # The line cut by the kill is gone; the resume is written down.
    events = time_to_quality_lib.json_lines(clock_log)
    assert {"contender": "a", "resumed_from_step": 4} in [
        {key: event[key] for key in ("contender", "resumed_from_step")}
        for event in events
        if "resumed_from_step" in event
    ]


def test_a_race_resumes_only_what_it_can(tmp_path):
    clock_log = tmp_path / "clock.jsonl"
    contender = _resumable(tmp_path, [150.0])
    # Another command's race.
    clock_log.write_text(
        json.dumps({"contender": "a", "command": ["other"]}) + "\n"
    )
    with pytest.raises(time_to_quality_lib.ResumeError, match="other commands"):
        time_to_quality_lib.race(
            [contender], [100.0], 1.0, 1.0, clock_log=str(clock_log)
        )
    # A contender that keeps no checkpoints.
    header = {"contender": "a", "command": list(contender.command)}
    clock_log.write_text(json.dumps(header) + "\n")
    with pytest.raises(time_to_quality_lib.ResumeError, match="no checkpoints"):
        time_to_quality_lib.race(
            [_resumable(tmp_path, [150.0], resumable=False)],
            [100.0],
            1.0,
            1.0,
            clock_log=str(clock_log),
        )
    # A checkpoint the race never saw, older than one it did.
    (tmp_path / "checkpoint").write_text("2")
    seen = {"contender": "a", "checkpoint_step": 4, "seconds": 30.0}
    clock_log.write_text(json.dumps(header) + "\n" + json.dumps(seen) + "\n")
    with pytest.raises(time_to_quality_lib.ResumeError, match="step 2 is not"):
        time_to_quality_lib.race(
            [contender], [100.0], 1.0, 1.0, clock_log=str(clock_log)
        )


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
    arguments = [
        f"--workdir={tmp_path / 'race'}",
        "--train_flagfile=configs/mnist_smoke.flags",
        "--train_flags=--dataset=synthetic,--train_steps=40,"
        "--max_eval_examples=0,--num_pictures=0,--checkpoint_every_steps=20",
        "--eval_every_steps=20",
        "--thresholds=100000",
        "--window_seconds=5",
        f"--output={output}",
    ]
    result = _binary(*arguments)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    draw = report["results"]["draw_tf"]
    assert draw["outcome"] == "reached every threshold"
    assert draw["thresholds"]["100000"]["step"] == 20
    assert draw["thresholds"]["100000"]["minutes"] > 0
    assert report["peer"] == "not run: --peer_draw not given"
    assert report["device"]["vector_extensions"]
    assert draw["resumed"] == []
    # The same command again resumes the race: from train.py's last
    # checkpoint (none, step 20's, or step 40's: where the trainer was when
    # it was stopped), the threshold kept or reached again.
    checkpoints = tmp_path / "race" / "draw_tf" / "checkpoints"
    last_checkpoint = max(
        [0]
        + [
            int(name.name[len("ckpt-") : -len(".index")])
            for name in checkpoints.glob("ckpt-*.index")
        ]
    )
    result = _binary(*arguments)
    assert result.returncode == 0, result.stderr[-2000:]
    draw = json.loads(output.read_text())["results"]["draw_tf"]
    assert draw["outcome"] == "reached every threshold"
    assert draw["thresholds"]["100000"]["step"] == 20
    assert [resume["from_step"] for resume in draw["resumed"]] in (
        [0],
        [20],
        [40],
    )
    assert draw["resumed"][0]["from_step"] == last_checkpoint


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if text.encode() in file.read():
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


def test_binary_stopped_by_sigterm_ends_its_trainer(tmp_path):
    workdir = tmp_path / "race"
    process = subprocess.Popen(
        [
            sys.executable,
            _BINARY,
            f"--workdir={workdir}",
            "--train_flagfile=configs/mnist_smoke.flags",
            "--train_flags=--dataset=synthetic,--train_steps=100000,"
            "--max_eval_examples=0,--num_pictures=0",
            "--eval_every_steps=20",
            "--thresholds=1",
        ],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clock_log = workdir / "race_clock.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
        "validation" in event
        for event in time_to_quality_lib.json_lines(str(clock_log))
    ):
        time.sleep(0.5)
    trainers = _processes_mentioning(str(workdir / "draw_tf"))
    try:
        assert trainers  # train.py, racing
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        alive = [pid for pid in trainers if _process_state(pid) not in "Z"]
        assert not alive
    finally:  # nothing left running, whatever failed
        process.kill()
        for pid in _processes_mentioning(str(workdir / "draw_tf")):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--thresholds=ninety"], "--thresholds must be comma-separated"),
        (["--peer_draw=/nonexistent/draw.py"], "--peer_draw=/nonexistent"),
        (["--peer_python=/usr/bin/python3"], "--peer_python and --peer_flags"),
        (["--train_flagfile=/nonexistent.flags"], "no such file"),
        (["--train_flags=--validation_size=0"], "times the validation -ELBO"),
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
    race = tmp_path / "race"
    race.mkdir()
    (race / "race_clock.jsonl").write_text("")
    result = _binary(f"--workdir={race}", "--peer_draw=draw.py", timeout=120)
    assert result.returncode == 2
    assert "beside the peer cannot resume" in result.stderr.splitlines()[-1]
