"""Callout delivery with Autotask's retry, error-log and deactivation behaviour (§8.3, §8.4).

- Each (webhook, event type) pair has its own FIFO queue: while one event is being retried,
  later events of that pair wait, so a receiver sees them in trigger order.
- While delivery is healthy, a queue sends one callout at a time in trigger order by default;
  ``callouts.dispatch="concurrent"`` sends up to ``concurrency`` at once in a shuffled order
  instead (healthy concurrency is unknown). Failed events are retried one by one, in order.
- An attempt times out after 10 s; a failed attempt is retried after 30 s; after 5 attempts the
  event is written to ``WebhookEventErrorLogs`` and dropped.
- 25 consecutive failed events (not attempts) deactivate the webhook. A success in between
  resets the count.
- A webhook that stops (auto-deactivation, API delete, API ``IsActive=false``, its owner
  resource deactivated or deleted) gets a deactivation notice: a POST of
  ``{"Action":"Deactivated","Guid":...,"Id":...,"EventTime":...}`` to its DeactivationUrl,
  unsigned unless configured, optionally to its WebhookUrl too (all *assumed*, §8.4).
- Faults can drop (sequence number consumed, nothing sent), duplicate (the same bytes sent
  twice) or reorder (the next queued event overtakes) callouts.

All Autotask durations go through ``SimulatorConfig.scaled`` so tests run the whole cycle in
milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import aiohttp

from tools.autotask_sim.callouts.codec import (
    SIGNATURE_HEADER,
    build_payload,
    encode_payload,
    entity_type,
    signature,
)
from tools.autotask_sim.callouts.events import ChangeEvent
from tools.autotask_sim.callouts.matching import CalloutMatcher
from tools.autotask_sim.clock import SimClock, utc_now
from tools.autotask_sim.config import DeactivationTrigger, FaultConfig, SimulatorConfig
from tools.autotask_sim.jsontypes import JsonObject, Record
from tools.autotask_sim.store.webhooks import WebhookRegistry, https_on_443

QueueKey = tuple[str, int, str]  # (webhook root, webhook id, action)
Outcome = Literal["delivered", "failed", "discarded"]
HTTPS_ONLY_ERROR = "Unable to connect to the remote server (callouts use https on port 443 only)."


@dataclass(slots=True)
class PendingCallout:
    """One event on its way to one webhook."""

    root: str
    webhook_id: int
    action: str
    sequence: int
    body: bytes


class CalloutDispatcher:
    """Queues, sends, retries and gives up on callouts; sends deactivation notices."""

    def __init__(
        self,
        config: SimulatorConfig,
        faults: Callable[[], FaultConfig],
        registry: WebhookRegistry,
        matcher: CalloutMatcher,
        clock: SimClock,
    ) -> None:
        self.config = config
        self._faults = faults
        self.registry = registry
        self.matcher = matcher
        self.clock = clock
        self._rng = random.Random(f"callouts:{config.seed}")
        self._queues: dict[QueueKey, deque[PendingCallout]] = {}
        self._workers: dict[QueueKey, asyncio.Task[None]] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._sequence: dict[tuple[str, int], int] = {}
        self.consecutive_failures: dict[tuple[str, int], int] = {}
        self.log: deque[JsonObject] = deque(maxlen=config.callouts.delivery_log_size)
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "delivered",
                "failed_attempts",
                "error_logged",
                "dropped",
                "duplicated",
                "reordered",
                "discarded",
                "deactivated",
                "deactivation_notices",
            ),
            0,
        )
        self._session: aiohttp.ClientSession | None = None
        registry.on_deactivated = self._on_deactivated
        registry.on_reactivated = self._on_reactivated

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.callouts.max_connections)
        self._session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        tasks = [*self._workers.values(), *self._side_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._side_tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def busy(self) -> bool:
        """Whether any callout is queued, in flight or waiting for a retry."""
        return bool(self._workers or self._side_tasks or any(self._queues.values()))

    async def wait_idle(self, max_wait: timedelta) -> bool:
        """Wait until nothing is queued or in flight; False if ``max_wait`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait.total_seconds()
        while self.busy():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # ------------------------------------------------------------- enqueue

    def on_event(self, event: ChangeEvent) -> None:
        """Bus listener: one pending callout per matching webhook."""
        targets = self.matcher.match(event)
        if not targets:
            return
        settings = self.config.callouts
        wire_type = entity_type(event.entity, settings.company_entity_type)
        for target in targets:
            webhook_id = target.webhook["id"]
            seq_key = (target.root, webhook_id)
            sequence = self._sequence.get(seq_key, 0) + 1
            self._sequence[seq_key] = sequence
            guid = str(target.webhook.get("webhookGuid") or "")
            if settings.guid == "event":
                guid = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            payload = build_payload(
                action=event.action,
                guid=guid,
                entity_type=wire_type,
                entity_id=event.entity_id,
                fields=target.fields,
                event_time=self.clock.event_time(event.at),
                sequence_number=sequence,
                person_id=event.person_id,
                person_id_key=settings.person_id_key,
            )
            item = PendingCallout(
                target.root, webhook_id, event.action, sequence, encode_payload(payload)
            )
            faults = self._faults()
            if faults.callout_drop_rate and self._rng.random() < faults.callout_drop_rate:
                self._record(item, "dropped", attempt=0)
                continue
            self._enqueue(item)

    def _enqueue(self, item: PendingCallout) -> None:
        key = (item.root, item.webhook_id, item.action)
        self._queues.setdefault(key, deque()).append(item)
        if key not in self._workers:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (offline use): the item waits for the next event in a loop
            self._workers[key] = loop.create_task(self._worker(key))

    # -------------------------------------------------------------- workers

    async def _worker(self, key: QueueKey) -> None:
        queue = self._queues[key]
        try:
            while queue:
                if self.config.callouts.dispatch == "concurrent":
                    await self._run_batch(await self._batch(queue))
                else:
                    await self._run_one(await self._next(queue))
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def _run_one(
        self, item: PendingCallout, attempted: int = 0, last_error: str = ""
    ) -> None:
        """Deliver ``item`` (attempts after ``attempted``), then maybe duplicate it."""
        try:
            if attempted == 0 and not self._wanted(item):
                return
            if await self._deliver(item, attempted, last_error):
                await self._maybe_duplicate(item)
        except Exception as exc:  # one bad item must not stop the queue behind it
            self._record(item, "internal_error", attempt=0, error=repr(exc))

    async def _run_batch(self, batch: list[PendingCallout]) -> None:
        """Concurrent dispatch: the first attempts of ``batch`` at once, started in a shuffled
        order; the events that failed are then retried one by one in trigger order."""
        ranks = list(range(len(batch)))
        self._rng.shuffle(ranks)
        spread = self.config.callouts.concurrent_spread.total_seconds()

        async def first_attempt(item: PendingCallout, rank: int) -> tuple[Outcome, str]:
            await asyncio.sleep(rank * spread)
            if not self._wanted(item):
                return "discarded", ""
            outcome, error = await self._attempt(item, 1)
            if outcome == "delivered":
                await self._maybe_duplicate(item)
            return outcome, error

        results = await asyncio.gather(
            *(first_attempt(item, rank) for item, rank in zip(batch, ranks, strict=True)),
            return_exceptions=True,
        )
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                self._record(item, "internal_error", attempt=0, error=repr(result))
            elif result[0] == "failed":
                await self._run_one(item, attempted=1, last_error=result[1])

    async def _batch(self, queue: deque[PendingCallout]) -> list[PendingCallout]:
        batch = [await self._next(queue)]
        while queue and len(batch) < self.config.callouts.concurrency:
            batch.append(queue.popleft())
        return batch

    async def _next(self, queue: deque[PendingCallout]) -> PendingCallout:
        rate = self._faults().callout_reorder_rate
        if rate and self._rng.random() < rate:
            if len(queue) < 2:
                await asyncio.sleep(self.config.callouts.reorder_hold.total_seconds())
            if len(queue) >= 2:
                item = queue[1]
                del queue[1]
                self.counters["reordered"] += 1
                return item
        return queue.popleft()

    def _webhook(self, item: PendingCallout) -> Record | None:
        root = self.registry.root(item.root)
        return None if root is None else root.webhooks.get(item.webhook_id)

    def _wanted(self, item: PendingCallout) -> bool:
        """Whether the webhook still exists and is active; records a discard otherwise."""
        webhook = self._webhook(item)
        if webhook is None or not webhook.get("isActive"):
            self._record(item, "discarded", attempt=0)
            return False
        return True

    async def _deliver(self, item: PendingCallout, attempted: int, last_error: str) -> bool:
        """The attempts after ``attempted``; on running out, the error log. True if delivered."""
        settings = self.config.callouts
        error = last_error
        for attempt in range(attempted + 1, settings.max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.config.scaled(settings.retry_delay).total_seconds())
            outcome, error = await self._attempt(item, attempt)
            if outcome == "delivered":
                return True
            if outcome == "discarded":
                return False
        self._give_up(item, error)
        return False

    async def _attempt(self, item: PendingCallout, attempt: int) -> tuple[Outcome, str]:
        """One POST of ``item``; the outcome and the .NET-style error text of a failure."""
        webhook = self._webhook(item)
        if webhook is None or not webhook.get("isActive"):
            self._record(item, "discarded", attempt=attempt)
            return "discarded", ""
        status, error = await self._post(webhook, item)
        if status is not None and 200 <= status < 300:
            self.consecutive_failures[(item.root, item.webhook_id)] = 0
            self.counters["delivered"] += 1
            self._record(item, "delivered", attempt=attempt, status=status)
            return "delivered", ""
        self.counters["failed_attempts"] += 1
        self._record(item, "failed_attempt", attempt=attempt, status=status, error=error)
        return "failed", error

    def _give_up(self, item: PendingCallout, error: str) -> None:
        """Out of attempts: an error-log row, and deactivation after too many such events."""
        settings = self.config.callouts
        webhook = self._webhook(item)
        if webhook is not None:
            self.registry.add_error_log(
                item.root, webhook, error, item.body.decode("ascii"), item.sequence
            )
        self.counters["error_logged"] += 1
        self._record(item, "error_logged", attempt=settings.max_attempts, error=error)
        key = (item.root, item.webhook_id)
        failures = self.consecutive_failures.get(key, 0) + 1
        self.consecutive_failures[key] = failures
        if failures >= settings.deactivate_after_failed_events:
            self.registry.deactivate(item.root, item.webhook_id)

    async def _maybe_duplicate(self, item: PendingCallout) -> None:
        rate = self._faults().callout_duplicate_rate
        if not rate or self._rng.random() >= rate:
            return
        webhook = self._webhook(item)
        if webhook is None:
            return
        status, error = await self._post(webhook, item)
        self.counters["duplicated"] += 1
        self._record(item, "duplicated", attempt=1, status=status, error=error or None)

    async def _post(self, webhook: Record, item: PendingCallout) -> tuple[int | None, str]:
        """One attempt: (HTTP status or None, .NET-style error text for the error log)."""
        headers = {"Content-Type": "application/json"}
        secret = webhook.get("secretKey")
        if isinstance(secret, str) and secret:
            headers[SIGNATURE_HEADER] = signature(secret, item.body)
        self.counters["sent"] += 1
        return await self._send(str(webhook.get("webhookUrl")), item.body, headers)

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        """POST ``body`` to ``url`` within the callout timeout: (status or None, error text)."""
        assert self._session is not None, "dispatcher not started"
        if self.config.webhooks.https_only == "on_delivery" and not https_on_443(url):
            return None, HTTPS_ONLY_ERROR
        scaled = self.config.scaled(self.config.callouts.timeout)
        timeout = aiohttp.ClientTimeout(total=scaled.total_seconds())
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=timeout
            ) as response:
                await response.read()
                reason = response.reason or ""
                return response.status, (
                    f"The remote server returned an error: ({response.status}) {reason}."
                )
        except TimeoutError:
            return None, "The operation has timed out."
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, f"Unable to connect to the remote server ({type(exc).__name__})."

    # -------------------------------------------------------- deactivation

    def _on_deactivated(self, root: str, webhook: Record, reason: DeactivationTrigger) -> None:
        if reason == "auto":
            self.counters["deactivated"] += 1
        settings = self.config.callouts
        if reason not in settings.deactivation_calls_on:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        body = encode_payload(
            {
                "Action": "Deactivated",
                "Guid": webhook.get("webhookGuid"),
                "Id": webhook.get("id"),
                "EventTime": self.clock.event_time(utc_now()),
            }
        )
        targets = [("deactivationUrl", webhook.get("deactivationUrl"))]
        if settings.deactivation_to_webhook_url:
            targets.append(("webhookUrl", webhook.get("webhookUrl")))
        for target, url in targets:
            if not isinstance(url, str) or not url:
                continue
            notice = self._deactivation_notice(root, webhook, reason, target, url, body)
            task = loop.create_task(notice)
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _deactivation_notice(
        self,
        root: str,
        webhook: Record,
        reason: DeactivationTrigger,
        target: str,
        url: str,
        body: bytes,
    ) -> None:
        """One POST of the notice (no retries: nothing says Autotask retries it)."""
        headers = {"Content-Type": "application/json"}
        secret = webhook.get("secretKey")
        signed = self.config.callouts.deactivation_signed and isinstance(secret, str) and secret
        if signed:
            assert isinstance(secret, str)
            headers[SIGNATURE_HEADER] = signature(secret, body)
        self.counters["deactivation_notices"] += 1
        status, error = await self._send(url, body, headers)
        self.log.append(
            {
                "at": self.clock.event_time(utc_now()),
                "root": root,
                "webhookId": webhook.get("id"),
                "outcome": "deactivation_call",
                "reason": reason,
                "target": target,
                "url": url,
                "signed": bool(signed),
                "status": status,
                "error": None if status is not None else error,
                "body": body.decode("ascii"),
            }
        )

    def _on_reactivated(self, root: str, webhook_id: int) -> None:
        self.consecutive_failures[(root, webhook_id)] = 0

    # ------------------------------------------------------------- logging

    def _record(self, item: PendingCallout, outcome: str, **extra: Any) -> None:
        if outcome in ("dropped", "discarded"):
            self.counters[outcome] += 1
        entry: JsonObject = {
            "at": self.clock.event_time(utc_now()),
            "root": item.root,
            "webhookId": item.webhook_id,
            "action": item.action,
            "sequenceNumber": item.sequence,
            "outcome": outcome,
            "status": extra.get("status"),
            "error": extra.get("error"),
            "attempt": extra.get("attempt"),
            "body": item.body.decode("ascii"),
        }
        self.log.append(entry)


__all__ = ["HTTPS_ONLY_ERROR", "CalloutDispatcher", "PendingCallout"]
