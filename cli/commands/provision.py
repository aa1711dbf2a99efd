"""``autotask-sync provision``: plan, apply, status, rotate-secret or tear down the webhooks.

    autotask-sync provision plan [--connection NAME | --all] [--json]
    autotask-sync provision apply [--connection NAME | --all]
    autotask-sync provision status [--connection NAME | --all] [--json]
    autotask-sync provision rotate-secret [--connection NAME | --all] [--entity E ...]
    autotask-sync provision teardown (--connection NAME | --all)

The connections are the environment one (``AUTOTASK_SYNC_AUTOTASK_*``) and the enabled stored
ones (``autotask-sync connections``); without ``--connection`` or ``--all`` the only one served is
meant. ``plan`` and ``status`` only read. ``apply`` runs the same pass the service runs; naming a
connection also lifts the hold a teardown left on it (``--all`` skips held connections).
``teardown`` deletes only the project's own webhooks of the connection and retires their
registrations. Exit status: 0 when every connection is as desired, 1 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from cli.store import Store, open_store
from cli.text import iso, yes_no
from services.provisioner import store as provisioning
from services.provisioner.app import PROPAGATION
from services.provisioner.control import KafkaSweepPublisher
from services.provisioner.plan import Plan
from services.provisioner.provision import CLIENT_CONFIG, Mode, PassResult, Provisioner
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.status import StatusRow, status_rows
from shared.apibudget import command_client
from shared.connections import store as rows
from shared.connections.catalogue import ServedConnection, environment_connection
from shared.db import session
from shared.entities import find_rest_name, webhook_entities
from shared.errors import ConfigError, KafkaError, SyncError
from shared.kafka import client_config, make_producer, start_client
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from shared.settings import load_settings

ACTIONS = ("plan", "apply", "status", "rotate-secret", "teardown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--connection", metavar="NAME", help="only this connection")
    which.add_argument("--all", action="store_true", help="every connection served")
    parser.add_argument(
        "--entity",
        action="append",
        default=[],
        metavar="ENTITY",
        help="rotate-secret: only this entity's webhook (repeatable; default every one)",
    )
    parser.add_argument("--json", action="store_true", help="plan, status: print JSON")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(ProvisionerSettings)
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: ProvisionerSettings) -> int:
    if args.action == "teardown" and not (args.connection or args.all):
        raise ConfigError("teardown needs --connection NAME (or --all): it deletes webhooks")
    async with open_store(settings) as store:
        served = await _connections(
            store,
            settings,
            name=args.connection,
            every=args.all,
            include_disabled=args.action == "teardown",
        )
        if args.action in ("plan", "status"):
            return await _read_only(args, settings, store, served)
        async with _publisher(settings, args.action) as publisher:
            provisioner = _provisioner(settings, store, publisher)
            return await _passes(args, settings, provisioner, served)


async def teardown_connection(name: str) -> PassResult:
    """Tear down the webhooks of connection ``name`` (for ``connections remove --teardown``)."""
    settings = load_settings(ProvisionerSettings)
    async with open_store(settings) as store:
        [served] = await _connections(
            store, settings, name=name, every=False, include_disabled=True
        )
        provisioner = _provisioner(settings, store, None)
        async with command_client(settings, served.connection, CLIENT_CONFIG) as client:
            return await provisioner.run(
                served,
                client,
                trigger="cli",
                mode="teardown",
                lock_wait=settings.provisioner_lock_wait,
            )


# --- actions ----------------------------------------------------------------------------------
async def _read_only(
    args: argparse.Namespace,
    settings: ProvisionerSettings,
    store: Store,
    served: Sequence[ServedConnection],
) -> int:
    provisioner = _provisioner(settings, store, None)
    documents: list[dict[str, Any]] = []
    failed = False
    for connection in served:
        async with command_client(settings, connection.connection, CLIENT_CONFIG) as client:
            try:
                plan, observation = await provisioner.plan(connection, client)
            except SyncError as exc:  # report it and go on with the others
                failed = True
                documents.append({"connection": connection.name, "error": str(exc)})
                if not args.json:
                    print(f"connection {connection.name!r}: FAILED: {exc}")
                continue
        async with session(store.pool, "read the provisioning record") as db:
            record = await provisioning.fetch_record(db, connection.name)
        held = record is not None and record.held_at is not None
        if args.action == "plan":
            documents.append(_plan_document(plan, held=held))
            if not args.json:
                print(_plan_text(plan, held=held))
        else:
            table = status_rows(observation)
            documents.append(_status_document(connection.name, table, record))
            if not args.json:
                print(_status_text(connection.name, table, record))
    if args.json:
        print(json.dumps(documents, indent=2, default=_json_default))
    return 1 if failed else 0


async def _passes(
    args: argparse.Namespace,
    settings: ProvisionerSettings,
    provisioner: Provisioner,
    served: Sequence[ServedConnection],
) -> int:
    mode: Mode = "teardown" if args.action == "teardown" else "apply"
    rotate = _rotate_entities(args) if args.action == "rotate-secret" else ()
    failed = False
    for connection in served:
        async with command_client(settings, connection.connection, CLIENT_CONFIG) as client:
            result = await provisioner.run(
                connection,
                client,
                trigger="cli",
                mode=mode,
                rotate=rotate,
                release_hold=bool(args.connection),
                lock_wait=settings.provisioner_lock_wait,
            )
        print(_result_text(result, action=args.action))
        failed = failed or not result.ok
    return 1 if failed else 0


def _rotate_entities(args: argparse.Namespace) -> tuple[str, ...]:
    """The entities whose webhook secret ``rotate-secret`` rotates (default: every one)."""
    if not args.entity:
        return tuple(spec.rest_name for spec in webhook_entities())
    names = []
    for name in args.entity:
        spec = find_rest_name(name)
        if spec is None or not spec.has_webhooks:
            raise ConfigError(f"--entity {name!r} is not an entity with webhooks")
        names.append(spec.rest_name)
    return tuple(names)


# --- plumbing ---------------------------------------------------------------------------------
async def _connections(
    store: Store,
    settings: ProvisionerSettings,
    *,
    name: str | None,
    every: bool,
    include_disabled: bool,
) -> list[ServedConnection]:
    """The connections the command works on (``name``, all of them, or the only one), in
    name order; disabled stored ones only with ``include_disabled``."""
    found: dict[str, ServedConnection] = {}
    environment = environment_connection(settings)
    if environment is not None:
        found[environment.name] = environment
    async with session(store.pool, "read the stored connections") as db:
        stored = await rows.fetch_all(db)
    usable = [row for row in stored if row.name not in found and (row.enabled or include_disabled)]
    if usable:
        box = store.box()
        for row in usable:
            if name and row.name != name:
                continue
            connection = row.open(box, default_zone_lookup_url=settings.autotask_zone_lookup_url)
            found[row.name] = ServedConnection(connection=connection, scope=row.sync_scope())
    if name:
        if name not in found:
            if any(r.name == name and not r.enabled for r in stored):
                raise ConfigError(
                    f"connection {name!r} is disabled: enable it first "
                    f"(`autotask-sync connections enable {name}`)"
                )
            served = ", ".join(sorted(found)) or "none"
            raise ConfigError(f"no connection {name!r} (served here: {served})")
        return [found[name]]
    if not found:
        raise ConfigError(
            "no connection to provision: set AUTOTASK_SYNC_AUTOTASK_USERNAME (and its secret "
            "and integration code) or add one with `autotask-sync connections add`"
        )
    if not every and len(found) > 1:
        raise ConfigError(
            f"{len(found)} connections are served ({', '.join(sorted(found))}): name one with "
            "--connection NAME, or use --all"
        )
    return [found[name] for name in sorted(found)]


def _provisioner(
    settings: ProvisionerSettings, store: Store, publisher: KafkaSweepPublisher | None
) -> Provisioner:
    keys = settings.secret_keys.get_secret_value()
    return Provisioner(
        settings=settings,
        pool=store.pool,
        box=SecretBox.from_setting(keys) if keys else None,
        publisher=publisher,
        propagation=PROPAGATION,
    )


@asynccontextmanager
async def _publisher(
    settings: ProvisionerSettings, action: str
) -> AsyncIterator[KafkaSweepPublisher | None]:
    """A producer for sweep requests; None (sweeps stay owed) when Kafka cannot be reached."""
    if action == "teardown":
        yield None
        return
    kafka = client_config(settings)
    producer: AIOKafkaProducer = make_producer(
        kafka,
        client_id=f"{settings.kafka_client_id}-cli",
        max_request_size=settings.kafka_max_request_size,
    )
    try:
        await start_client(producer, kafka, what="start the Kafka producer")
    except KafkaError as exc:
        await producer.stop()
        print(
            f"warning: {exc}; catch-up sweep requests stay owed and the provisioner service "
            "sends them"
        )
        yield None
        return
    try:
        yield KafkaSweepPublisher(producer, Topics(prefix=settings.topic_prefix).control)
    finally:
        await producer.stop()


# --- output -----------------------------------------------------------------------------------
def _plan_text(plan: Plan, *, held: bool) -> str:
    name = plan.connection
    lines = []
    if plan.empty:
        lines.append(f"connection {name!r}: in sync, nothing to do")
    else:
        lines.append(
            f"connection {name!r}: {len(plan.steps)} step(s), {plan.autotask_writes} of them "
            "Autotask writes"
        )
        for step in plan.steps:
            lines.append(f"  {step.entity:<19} {step.describe()}")
    if held:
        lines.append(
            f"  (held after a teardown: `provision apply --connection {name}` applies this)"
        )
    for entity, reason in sorted(plan.blocked.items()):
        lines.append(f"  ! {entity} left as it is: {reason}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _plan_document(plan: Plan, *, held: bool) -> dict[str, Any]:
    return {
        "connection": plan.connection,
        "held": held,
        "steps": [
            {"entity": s.entity, "kind": s.kind, "description": s.describe()} for s in plan.steps
        ],
        "autotask_writes": plan.autotask_writes,
        "blocked": dict(plan.blocked),
        "notes": list(plan.notes),
    }


_COLUMNS = (
    "ENTITY",
    "WEBHOOK",
    "ACTIVE",
    "READY",
    "FIELDS",
    "EXCLUSIONS",
    "LAST CALLOUT",
    "LAST DEACTIVATION",
    "NOTE",
)


def _status_text(
    name: str, table: Sequence[StatusRow], record: provisioning.ProvisioningRecord | None
) -> str:
    header = f"connection {name!r}"
    if record is not None and record.held_at is not None:
        header += f" (held since {iso(record.held_at)}: {record.held_reason})"
    if record is not None and record.last_pass_at is not None:
        header += f"; last pass {iso(record.last_pass_at)} {record.last_outcome}"
    if not table:
        return f"{header}\n  no webhooks"
    cells = [_COLUMNS] + [
        (
            row.entity,
            str(row.webhook_id) if row.webhook_id is not None else "-",
            _yes(row.active),
            _yes(row.ready),
            f"{row.fields}+{row.udf_fields} udf" if row.webhook_id is not None else "-",
            ",".join(map(str, row.exclusions)) or "-",
            iso(row.last_callout_at),
            iso(row.last_deactivated_at),
            row.note + (f" ({row.duplicates} duplicate(s))" if row.duplicates else ""),
        )
        for row in table
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    lines = [header] + [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def _status_document(
    name: str, table: Sequence[StatusRow], record: provisioning.ProvisioningRecord | None
) -> dict[str, Any]:
    return {
        "connection": name,
        "record": asdict(record) if record is not None else None,
        "webhooks": [asdict(row) for row in table],
    }


def _result_text(result: PassResult, *, action: str) -> str:
    name = result.connection
    if result.outcome == "held":
        return f"connection {name!r}: skipped, {result.error}"
    if result.outcome == "locked":
        return f"connection {name!r}: FAILED: {result.error}"
    if result.report is None or result.plan is None:
        return f"connection {name!r}: FAILED: {result.error}"
    if result.outcome == "in_sync":
        text = f"connection {name!r}: in sync, nothing to do"
        return text + (" (torn down; held)" if action == "teardown" else "")
    done = sum(1 for r in result.report.results if r.outcome in ("done", "gone"))
    lines = [
        f"connection {name!r}: {'applied' if result.ok else 'FAILED'}: {done} of "
        f"{len(result.plan.steps)} step(s) done"
    ]
    for step_result in result.report.results:
        if step_result.outcome == "failed":
            lines.append(
                f"  {step_result.step.entity}: {step_result.step.describe()}: {step_result.error}"
            )
    owed = sum(1 for r in result.report.results if r.outcome == "owed")
    if owed:
        lines.append(f"  {owed} catch-up sweep request(s) owed: the service sends them")
    if action == "teardown" and result.ok:
        lines.append(
            f"  held: the service leaves it alone until `provision apply --connection {name}`"
        )
    for entity, reason in sorted(result.plan.blocked.items()):
        lines.append(f"  ! {entity} left as it is: {reason}")
    for note in result.plan.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _yes(value: bool | None) -> str:
    """``yes``/``no``; ``-`` where there is no webhook to say it of."""
    return "-" if value is None else yes_no(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


__all__ = ["add_arguments", "run", "teardown_connection"]
