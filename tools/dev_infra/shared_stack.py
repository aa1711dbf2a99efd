"""One stack for all the processes of a parallel test run (pytest-xdist workers).

The run's controller hosts it (:class:`StackHost`): PostgreSQL and Kafka start the first time a
worker asks for them, so a run that needs neither starts nothing; the controller owns them for the
rest of the run (if it dies, the watchdogs of docs/adr/0002 stop them) and stops them when the run
ends. Workers ask with :func:`request_stack` through a folder the controller hands them: a request
file, answered by a JSON file holding the stack's addresses or the error that starting it raised.

Each worker then isolates itself on the shared servers the way every test already does: a
database of its own per test, topic and consumer group names made unique per test.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.errors import InfrastructureError
from tools.dev_infra.stack import DevStack, StackEnv

REQUEST = "request"
ANSWER = "stack.json"
POLL_SECONDS = 0.1


@dataclass
class StackHost:
    """Starts :attr:`stack` on the first request found in :attr:`folder`; :meth:`close` stops it."""

    folder: Path
    stack: DevStack = field(default_factory=lambda: DevStack(owned=True))
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def started(self) -> bool:
        return (self.folder / ANSWER).exists()

    def serve(self) -> None:
        """Watch for a request in a background thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._watch, name="stack-host", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._closing.is_set():
            if (self.folder / REQUEST).exists():
                self._answer()
                return
            self._closing.wait(POLL_SECONDS)

    def _answer(self) -> None:
        try:
            answer: dict[str, object] = {"env": asdict(self.stack.up())}
        except Exception as exc:  # handed to every worker that asks, which raises it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        scratch = self.folder / f".{ANSWER}.{os.getpid()}"
        scratch.write_text(json.dumps(answer))
        scratch.replace(self.folder / ANSWER)  # workers never read a half-written answer

    def close(self) -> dict[str, object]:
        """Stop the stack (after a start in progress finishes) and delete the folder. Returns
        where each service came from, start-up timings and the broker's peak memory."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        report: dict[str, object] = {}
        if self.started:
            report.update(self.stack.sources)
            report.update({k: round(v, 2) for k, v in self.stack.timings.items()})
            rss = self.stack.kafka_peak_rss()
            if rss:
                report["kafka_peak_rss_mib"] = round(rss / 2**20, 1)
        self.stack.down()
        shutil.rmtree(self.folder, ignore_errors=True)
        return report


def request_stack(folder: Path, *, timeout: float = 900.0) -> StackEnv:
    """Ask the run's :class:`StackHost` for the stack and wait for its addresses (the first start
    may download Kafka's jars). Raises the host's error if starting it failed."""
    answer_file = folder / ANSWER
    if not answer_file.exists():
        (folder / REQUEST).touch()
    deadline = time.monotonic() + timeout
    while not answer_file.exists():
        if time.monotonic() > deadline:
            raise InfrastructureError(f"the test run's stack was not ready within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    answer = json.loads(answer_file.read_text())
    if "error" in answer:
        raise InfrastructureError(f"starting the test run's stack failed: {answer['error']}")
    return StackEnv(**answer["env"])
