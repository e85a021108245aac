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
"""

import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

_STOP_GRACE_SECONDS = 30.0


@dataclasses.dataclass
class Contender:
    """One trainer.

    Attributes:
      name: a label for the report.
      command: argv of the training process.
      read_records: returns the validation records so far, each a dict
        with "step" and "negative_elbo" (and "epoch" where known).
      output_path: where the process's stdout and stderr go.
      environment: its environment (None: this process's).
    """

    name: str
    command: Sequence[str]
    read_records: Callable[[], list]
    output_path: str
    environment: dict | None = None


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

    def __init__(self, contender: Contender, thresholds: Sequence[float]):
        self.contender = contender
        self.reached = {threshold: None for threshold in thresholds}
        self.best = None
        self.seconds = 0.0  # of its own turns, up to the current one
        self.outcome = None
        self.output = open(contender.output_path, "w")
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
        for record in self.contender.read_records():
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

    def finish(self, outcome: str):
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
        }


def race(
    contenders: Sequence[Contender],
    thresholds: Sequence[float],
    window_seconds: float,
    max_minutes: float,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
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

    Returns:
      {name: {"thresholds": {"100": {"minutes", "step", "epoch",
      "negative_elbo"} or None, ...}, "best_validation", "minutes" (its
      own time in all), "outcome" ("reached every threshold", "time
      limit", "exited"), "exit_code", "command", "output"}}.
    """
    if not contenders:
        raise ValueError("race() needs at least one contender.")
    if window_seconds <= 0 or max_minutes <= 0 or poll_seconds <= 0:
        raise ValueError(
            "window_seconds, max_minutes and poll_seconds must be > 0."
        )
    running = []
    try:
        for contender in contenders:
            entry = _Running(contender, thresholds)
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
            entry.check(own_seconds)
            outcome = None
            if all(reached is not None for reached in entry.reached.values()):
                outcome = "reached every threshold"
            elif entry.process.poll() is not None:
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
                entry.finish("interrupted")
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
