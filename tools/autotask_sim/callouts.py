"""Callout delivery with Autotask's retry, error-log and deactivation behaviour (§8.3, §8.4).

- Each (webhook, event type) pair has its own FIFO queue: while one event is being retried,
  later events of that pair wait, so a receiver sees them in trigger order.
- An attempt times out after 10 s; a failed attempt is retried after 30 s; after 5 attempts the
  event is written to ``WebhookEventErrorLogs`` and dropped.
- 25 consecutive failed events (not attempts) deactivate the webhook: ``isActive`` goes false and
  the DeactivationUrl gets an unsigned ``{"Action":"Deactivated","Guid":...}`` POST. A success
  in between resets the count.
- Faults can drop (sequence number consumed, nothing sent), duplicate (the same bytes sent
  twice) or reorder (the next queued event overtakes) callouts.

All durations go through ``SimulatorConfig.scaled`` so tests run the whole cycle in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.entities import by_rest_name
from tools.autotask_sim.callout_codec import (
    SIGNATURE_HEADER,
    build_payload,
    encode_payload,
    signature,
)
from tools.autotask_sim.callout_matching import CalloutMatcher
from tools.autotask_sim.clock import SimClock, utc_now
from tools.autotask_sim.config import FaultConfig, SimulatorConfig
from tools.autotask_sim.events import ChangeEvent
from tools.autotask_sim.jsontypes import JsonObject, Record
from tools.autotask_sim.webhooks import WebhookRegistry

QueueKey = tuple[str, int, str]  # (webhook root, webhook id, action)


@dataclass(slots=True)
class PendingCallout:
    """One event on its way to one webhook."""

    root: str
    webhook_id: int
    action: str
    sequence: int
    body: bytes


class CalloutDispatcher:
    """Queues, sends, retries and gives up on callouts."""

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

    async def wait_idle(self, max_wait: float) -> bool:
        """Wait until nothing is queued or in flight; False if ``max_wait`` passed first."""
        deadline = asyncio.get_running_loop().time() + max_wait
        while self.busy():
            if asyncio.get_running_loop().time() >= deadline:
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
        spec = by_rest_name(event.entity)
        entity_type = spec.callout_types[-1] if settings.entity_type_aliases else spec.callout_type
        for target in targets:
            webhook_id = target.webhook["id"]
            seq_key = (target.root, webhook_id)
            sequence = self._sequence.get(seq_key, 0) + 1
            self._sequence[seq_key] = sequence
            guid = str(target.webhook.get("webhookGUID") or "")
            if settings.guid == "event":
                guid = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            payload = build_payload(
                action=event.action,
                guid=guid,
                entity_type=entity_type,
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
                item = await self._next(queue)
                try:
                    await self._process(item)
                except Exception as exc:  # one bad item must not stop the queue behind it
                    self._record(item, "internal_error", attempt=0, error=repr(exc))
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def _process(self, item: PendingCallout) -> None:
        webhook = self._webhook(item)
        if webhook is None or not webhook.get("isActive"):
            self._record(item, "discarded", attempt=0)
            return
        if await self._deliver(item):
            rate = self._faults().callout_duplicate_rate
            if rate and self._rng.random() < rate:
                await self._duplicate(item)

    async def _next(self, queue: deque[PendingCallout]) -> PendingCallout:
        rate = self._faults().callout_reorder_rate
        if rate and self._rng.random() < rate:
            if len(queue) < 2:
                await asyncio.sleep(self.config.callouts.reorder_hold_s)
            if len(queue) >= 2:
                item = queue[1]
                del queue[1]
                self.counters["reordered"] += 1
                return item
        return queue.popleft()

    def _webhook(self, item: PendingCallout) -> Record | None:
        root = self.registry.root(item.root)
        return None if root is None else root.webhooks.get(item.webhook_id)

    async def _deliver(self, item: PendingCallout) -> bool:
        settings = self.config.callouts
        key = (item.root, item.webhook_id)
        error = ""
        for attempt in range(1, settings.max_attempts + 1):
            webhook = self._webhook(item)
            if webhook is None or not webhook.get("isActive"):
                self._record(item, "discarded", attempt=attempt)
                return False
            status, error = await self._post(webhook, item)
            if status is not None and 200 <= status < 300:
                self.consecutive_failures[key] = 0
                self.counters["delivered"] += 1
                self._record(item, "delivered", attempt=attempt, status=status)
                return True
            self.counters["failed_attempts"] += 1
            self._record(item, "failed_attempt", attempt=attempt, status=status, error=error)
            if attempt < settings.max_attempts:
                await asyncio.sleep(self.config.scaled(settings.retry_delay_s))
        webhook = self._webhook(item)
        if webhook is not None:
            self.registry.add_error_log(
                item.root, webhook, error, item.body.decode("ascii"), item.sequence
            )
        self.counters["error_logged"] += 1
        self._record(item, "error_logged", attempt=settings.max_attempts, error=error)
        failures = self.consecutive_failures.get(key, 0) + 1
        self.consecutive_failures[key] = failures
        if failures >= settings.deactivate_after_failed_events:
            self.registry.deactivate(item.root, item.webhook_id)
        return False

    async def _duplicate(self, item: PendingCallout) -> None:
        webhook = self._webhook(item)
        if webhook is None:
            return
        status, error = await self._post(webhook, item)
        self.counters["duplicated"] += 1
        self._record(item, "duplicated", attempt=1, status=status, error=error or None)

    async def _post(self, webhook: Record, item: PendingCallout) -> tuple[int | None, str]:
        """One attempt: (HTTP status or None, .NET-style error text for the error log)."""
        assert self._session is not None, "dispatcher not started"
        headers = {"Content-Type": "application/json"}
        secret = webhook.get("secretKey")
        if isinstance(secret, str) and secret:
            headers[SIGNATURE_HEADER] = signature(secret, item.body)
        timeout = aiohttp.ClientTimeout(total=self.config.scaled(self.config.callouts.timeout_s))
        self.counters["sent"] += 1
        try:
            async with self._session.post(
                str(webhook.get("webhookUrl")), data=item.body, headers=headers, timeout=timeout
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

    def _on_deactivated(self, root: str, webhook: Record, reason: str) -> None:
        if reason == "auto":
            self.counters["deactivated"] += 1
        if reason not in self.config.callouts.deactivation_calls_on:
            return
        url = webhook.get("deactivationUrl")
        if not isinstance(url, str) or not url:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._call_deactivation(root, webhook, url, reason))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _call_deactivation(self, root: str, webhook: Record, url: str, reason: str) -> None:
        assert self._session is not None
        body = encode_payload({"Action": "Deactivated", "Guid": webhook.get("webhookGUID")})
        timeout = aiohttp.ClientTimeout(total=self.config.scaled(self.config.callouts.timeout_s))
        status: int | None = None
        error = ""
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            error = type(exc).__name__
        self.log.append(
            {
                "at": self.clock.event_time(utc_now()),
                "root": root,
                "webhookId": webhook.get("id"),
                "outcome": "deactivation_call",
                "reason": reason,
                "url": url,
                "status": status,
                "error": error or None,
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


__all__ = ["CalloutDispatcher", "PendingCallout"]
