"""Minutes to a validation -ELBO, for two trainers taking turns on one machine.

Each contender is a training command that appends its validation -ELBO to
a file as it goes (train.py's `eval/validation.jsonl`, the peer's log from
bench/peer_training.py). `race` starts them all and lets one run at a time:
the others are stopped (SIGSTOP) and the turn passes every
`window_seconds`, so that the machine's drift over hours (10-20% within
minutes on a shared CPU) falls on every contender alike. A contender's
clock counts only its own turns, from its process start (imports, tracing
and compilation included) to the poll that first sees a validation record
at or below each threshold; validation and checkpoints count, as they do
for a user. A contender leaves the race when it has reached every
threshold, when its process exits, or at `max_minutes` of its own time;
the others then run on alone.

With a `clock_log`, the race writes down as it goes the seconds of each
contender's own clock at which it saw each validation record and each new
checkpoint; started again with the same log (after the machine or the
race was stopped), it resumes: each contender's trainer restarts from its
last checkpoint and its clock from the seconds at which that checkpoint was
seen (one written as the race was stopped, after its last look: from the
contender's last heartbeat in the log, at most 10 s of its clock before),
with the thresholds reached up to that step kept. The work done after
that checkpoint is lost and not counted; the restart is. Only contenders
that resume from checkpoints (a `checkpoint_step`) can be resumed.
"""

import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

_STOP_GRACE_SECONDS = 30.0
_HEARTBEAT_SECONDS = 10.0  # of a contender's own clock, in the clock log


@dataclasses.dataclass
class Contender:
    """One trainer.

    Attributes:
      name: a label for the report.
      command: argv of the training process.
      read_records: returns the validation records so far, each a dict
        with "step" and "negative_elbo" (and "epoch" where known).
      output_path: where the process's stdout and stderr go (appended to).
      environment: its environment (None: this process's).
      checkpoint_step: returns the step its trainer would resume from if
        started now (0: none yet); None when it cannot resume.
    """

    name: str
    command: Sequence[str]
    read_records: Callable[[], list]
    output_path: str
    environment: dict | None = None
    checkpoint_step: Callable[[], int] | None = None


class ResumeError(ValueError):
    """A race's clock log that this race cannot resume from."""


def json_lines(path: str, split: str | None = None) -> list[dict]:
    """The records of a JSON-lines file (a partial last line is skipped).

    Args:
      path: the file; missing means no records yet.
      split: keep only records whose "split" is this, when given.
    """
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as file:
        for line in file:
            if not line.endswith("\n"):
                break  # being written
            record = json.loads(line)
            if split is None or record.get("split") == split:
                records.append(record)
    return records


class _Running:
    """A contender's process, its own clock and what it has reached."""

    def __init__(
        self,
        contender: Contender,
        thresholds: Sequence[float],
        restored: dict | None,
        write_event: Callable[[dict], None],
    ):
        self.contender = contender
        self.reached = {threshold: None for threshold in thresholds}
        self.best = None
        self.seconds = 0.0  # of its own turns, up to the current one
        self.outcome = None
        self.write_event = write_event
        self.records_seen = 0
        self.checkpoint = 0
        self.resumes = []
        self.logged_seconds = 0.0
        if restored is not None:
            self.seconds = restored["seconds"]
            self.logged_seconds = self.seconds
            self.checkpoint = restored["step"]
            self.resumes = restored["resumes"]
            for event in restored["validation"]:
                self._note(event["validation"], event["seconds"])
            # Records already written are the old ones, up to the
            # checkpoint counted above, past it lost work.
            self.records_seen = len(contender.read_records())
        self.output = open(contender.output_path, "a")
        self.process = subprocess.Popen(
            list(contender.command),
            stdout=self.output,
            stderr=subprocess.STDOUT,
            env=contender.environment,
            start_new_session=True,  # its own process group, stopped whole
        )

    def signal(self, number: int):
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass

    def check(self, seconds: float):
        """Notes the thresholds its records reach at `seconds` of its time."""
        records = self.contender.read_records()
        for record in records[self.records_seen :]:
            self._note(record, seconds)
            self._write({"validation": record, "seconds": seconds})
        self.records_seen = max(self.records_seen, len(records))
        self._log_checkpoint(seconds)
        if seconds - self.logged_seconds >= _HEARTBEAT_SECONDS:
            self._write({"seconds": seconds})

    def _log_checkpoint(self, seconds: float):
        """Logs its trainer's checkpoint at `seconds` if it is a new one."""
        if self.contender.checkpoint_step is not None:
            step = self.contender.checkpoint_step()
            if step != self.checkpoint:
                self.checkpoint = step
                self._write({"checkpoint_step": step, "seconds": seconds})

    def _write(self, event: dict):
        self.write_event({"contender": self.contender.name, **event})
        self.logged_seconds = event["seconds"]

    def _note(self, record: dict, seconds: float):
        """Takes one validation record seen at `seconds` of its time."""
        value = float(record["negative_elbo"])
        if self.best is None or value < self.best["negative_elbo"]:
            self.best = {
                "negative_elbo": round(value, 3),
                "step": int(record["step"]),
                "minutes": round(seconds / 60.0, 2),
            }
        for threshold, reached in self.reached.items():
            if reached is None and value <= threshold:
                self.reached[threshold] = {
                    "minutes": round(seconds / 60.0, 2),
                    "step": int(record["step"]),
                    "epoch": record.get("epoch"),
                    "negative_elbo": round(value, 3),
                }

    def finish(self, outcome: str, log_checkpoint: bool = True):
        """Ends its process; a checkpoint it wrote meanwhile is logged.

        Args:
          outcome: for the report.
          log_checkpoint: log a new checkpoint at the clock of its last look
            (`self.seconds`, which the caller has brought up to date).
        """
        self.outcome = outcome
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        self.output.close()
        if log_checkpoint:
            self._log_checkpoint(self.seconds)

    def report(self) -> dict:
        return {
            "command": " ".join(self.contender.command),
            "thresholds": {
                f"{threshold:g}": reached
                for threshold, reached in self.reached.items()
            },
            "best_validation": self.best,
            "minutes": round(self.seconds / 60.0, 2),
            "outcome": self.outcome,
            "exit_code": self.process.returncode,
            "output": self.contender.output_path,
            "resumed": self.resumes,
        }


def _restored_states(
    contenders: Sequence[Contender], events: list[dict], clock_log: str
) -> dict:
    """Each contender's clock and records at its last checkpoint.

    Args:
      contenders: the race's trainers, as started the first time.
      events: the clock log's lines so far.
      clock_log: its path, for the messages.

    Returns:
      {name: {"step", "seconds", "validation": [{"validation", "seconds"}, ...]
      (one per step up to "step", by step), "resumes": [{"from_step",
      "minutes"}, ...] (this one last)}}.

    Raises:
      ResumeError: the log is of other commands, a contender cannot resume,
        or its checkpoint was not seen by the race.
    """
    commands = {
        event["contender"]: event["command"]
        for event in events
        if "command" in event
    }
    ours = {contender.name: list(contender.command) for contender in contenders}
    if commands != ours:
        raise ResumeError(
            f"{clock_log} is the clock of a race of other commands "
            f"({commands}); resume with the same flags, or start a new race."
        )
    states = {}
    for contender in contenders:
        name = contender.name
        if contender.checkpoint_step is None:
            raise ResumeError(
                f"{name} keeps no checkpoints, so a race with it cannot "
                "resume; start a new race."
            )
        step = contender.checkpoint_step()
        mine = [event for event in events if event["contender"] == name]
        seconds = 0.0
        if step > 0:
            checkpoints = [
                event for event in mine if "checkpoint_step" in event
            ]
            seen = [
                event["seconds"]
                for event in checkpoints
                if event["checkpoint_step"] == step
            ]
            newest = max(
                (event["checkpoint_step"] for event in checkpoints), default=0
            )
            logged = [event["seconds"] for event in mine if "seconds" in event]
            if seen:
                seconds = seen[-1]
            elif logged and step > newest:
                # Written after the race's last look, just before it was
                # stopped: its clock then, to a heartbeat.
                seconds = max(logged)
            else:
                raise ResumeError(
                    f"{name}'s checkpoint at step {step} is not in "
                    f"{clock_log}: it was not written during this race."
                )
        by_step = {}  # the last time each step was seen: the surviving run
        for event in mine:
            record = event.get("validation")
            if record is not None and int(record["step"]) <= step:
                by_step[int(record["step"])] = event
        resumes = [
            {
                "from_step": event["resumed_from_step"],
                "minutes": round(event["seconds"] / 60.0, 2),
            }
            for event in mine
            if "resumed_from_step" in event
        ]
        resumes.append({"from_step": step, "minutes": round(seconds / 60.0, 2)})
        states[name] = {
            "step": step,
            "seconds": seconds,
            "validation": [by_step[key] for key in sorted(by_step)],
            "resumes": resumes,
        }
    return states


def _open_clock_log(clock_log: str):
    """The log opened to append, a partial last line (a kill) cut off."""
    if os.path.exists(clock_log):
        with open(clock_log, "rb+") as file:
            content = file.read()
            file.truncate(content.rfind(b"\n") + 1)
    return open(clock_log, "a")


def race(
    contenders: Sequence[Contender],
    thresholds: Sequence[float],
    window_seconds: float,
    max_minutes: float,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    clock_log: str | None = None,
) -> dict:
    """Runs the contenders in turns until each is done; see the module doc.

    Args:
      contenders: the trainers, at least one.
      thresholds: validation -ELBO values (nats) to time.
      window_seconds: length of a turn, > 0.
      max_minutes: each contender's budget of its own time, > 0.
      poll_seconds: how often records are read.
      clock: seconds, monotonic (injectable for tests).
      sleep: waits the given seconds (injectable for tests).
      clock_log: a JSON-lines file of the race's clock: a new race starts
        it, a race started again with it resumes (see the module doc).

    Returns:
      {name: {"thresholds": {"100": {"minutes", "step", "epoch",
      "negative_elbo"} or None, ...}, "best_validation", "minutes" (its
      own time in all), "outcome" ("reached every threshold", "time
      limit", "exited"), "exit_code", "command", "output", "resumed"
      ([{"from_step", "minutes"}, ...], empty for a race run at once)}}.

    Raises:
      ValueError: bad arguments; ResumeError: a clock log this race cannot
        resume from.
    """
    if not contenders:
        raise ValueError("race() needs at least one contender.")
    if window_seconds <= 0 or max_minutes <= 0 or poll_seconds <= 0:
        raise ValueError(
            "window_seconds, max_minutes and poll_seconds must be > 0."
        )
    events = json_lines(clock_log) if clock_log else []
    restored = _restored_states(contenders, events, clock_log) if events else {}
    log_file = _open_clock_log(clock_log) if clock_log else None

    def write_event(event: dict):
        if log_file:
            log_file.write(json.dumps(event) + "\n")
            log_file.flush()

    for contender in contenders:
        if contender.name in restored:
            state = restored[contender.name]
            write_event(
                {
                    "contender": contender.name,
                    "resumed_from_step": state["step"],
                    "seconds": state["seconds"],
                }
            )
        else:
            command = list(contender.command)
            write_event({"contender": contender.name, "command": command})
    running = []
    try:
        for contender in contenders:
            entry = _Running(
                contender,
                thresholds,
                restored=restored.get(contender.name),
                write_event=write_event,
            )
            if running:  # one at a time: the first has the first turn
                entry.signal(signal.SIGSTOP)
            running.append(entry)
        turn_start = clock()
        current = 0
        while any(entry.outcome is None for entry in running):
            sleep(poll_seconds)
            now = clock()
            entry = running[current]
            own_seconds = entry.seconds + (now - turn_start)
            exited = entry.process.poll() is not None  # then all is written
            entry.check(own_seconds)
            outcome = None
            if all(reached is not None for reached in entry.reached.values()):
                outcome = "reached every threshold"
            elif exited:
                outcome = "exited"
            elif own_seconds >= max_minutes * 60.0:
                outcome = "time limit"
            others = [
                index
                for index, other in enumerate(running)
                if other.outcome is None and index != current
            ]
            turn_over = now - turn_start >= window_seconds and others
            if outcome is None and not turn_over:
                continue
            entry.seconds = own_seconds
            if outcome is not None:
                entry.finish(outcome)
            else:
                entry.signal(signal.SIGSTOP)
            if others:
                current = next(
                    (index for index in others if index > current), others[0]
                )
                running[current].signal(signal.SIGCONT)
            turn_start = clock()
    finally:
        for entry in running:
            if entry.outcome is None:
                entry.finish("interrupted", log_checkpoint=False)
        if log_file:
            log_file.close()
    return {entry.contender.name: entry.report() for entry in running}


def ratios(results: dict, baseline: str, other: str) -> dict:
    """Minutes of `other` over `baseline`'s at each threshold both reached."""
    figures = {}
    for threshold, reached in results[baseline]["thresholds"].items():
        theirs = results[other]["thresholds"].get(threshold)
        if reached and theirs and reached["minutes"] > 0:
            ratio = theirs["minutes"] / reached["minutes"]
            figures[threshold] = round(ratio, 3)
    return figures
