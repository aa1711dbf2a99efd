"""``autotask-sync status``'s verdict: which conditions make it degraded or down (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cli.commands.status import _budget, render
from cli.verdict import Options, assess, verdict
from shared.apibudget.store import UsageRow

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
OPTIONS = Options(
    only=None,
    group="workers",
    commit_watch=timedelta(seconds=15),
    stall_after=timedelta(seconds=60),
    share=0.5,
)


def _hook(entity: str = "Tickets", state: str = "active") -> dict[str, Any]:
    return {
        "entity": entity,
        "state": state,
        "autotask_webhook_id": 7,
        "last_callout_at": NOW - timedelta(seconds=30),
        "last_deactivated_at": None,
        "secret_rotated_at": None,
    }


def _connection(**changes: Any) -> dict[str, Any]:
    healthy = {
        "enabled": True,
        "webhooks": [_hook()],
        "provisioner": None,
        "spool": {"rows": 0, "oldest": None},
        "scope": {"following": True, "pending": [], "last_applied_at": NOW},
        "sweeps": [],
        "repaired_last_24h": 0,
        "unresolved_ids": {},
        "api_budget": None,
        "lockout": None,
        "lag": {"waiting": 0, "at_least": False},
        "dead_letters": {"pending": {}, "replayed": 0},
    }
    return {**healthy, **changes}


def _details(**changes: Any) -> dict[str, Any]:
    healthy = {
        "at": NOW,
        "postgresql": {"ok": True},
        "kafka": {"ok": True},
        "connections": {"acme": _connection()},
        "consumer_lag": {
            "group": "workers",
            "topic": "autotask.callouts.v1",
            "topic_exists": True,
            "members": 2,
            "total": 0,
            "partitions": {0: 0},
            "by_connection": {},
            "at_least": False,
            "read": 0,
            "not_committing": {},
            "commit_watch_seconds": 15.0,
        },
        "dead_letters": {
            "pending": 0,
            "replayed": 0,
            "replays_known": True,
            "by_connection": {},
            "replayed_by_connection": {},
        },
    }
    return {**healthy, **changes}


def _lag(**changes: Any) -> dict[str, Any]:
    return {**_details()["consumer_lag"], **changes}


def _conditions(details: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r.severity, r.condition) for r in assess(details, OPTIONS)]


def test_a_deployment_with_nothing_wrong_is_healthy() -> None:
    reasons = assess(_details(), OPTIONS)
    assert reasons == []
    assert verdict(reasons) == "healthy"


def test_no_worker_while_callouts_wait_is_down_and_names_the_group() -> None:
    details = _details(consumer_lag=_lag(members=0, total=42, partitions={0: 42}))
    [reason] = assess(details, OPTIONS)
    assert (reason.severity, reason.condition) == ("down", "no_consumer")
    assert "no consumer in group workers: 42 callout(s) wait" in reason.text
    assert verdict([reason]) == "down"


def test_no_worker_with_nothing_waiting_yet_is_degraded() -> None:
    details = _details(consumer_lag=_lag(members=0))
    assert _conditions(details) == [("degraded", "no_consumer")]


def test_a_group_not_committing_is_degraded() -> None:
    stuck = {3: NOW - timedelta(minutes=10)}
    details = _details(consumer_lag=_lag(total=5, not_committing=stuck))
    [reason] = assess(details, OPTIONS)
    assert (reason.severity, reason.condition) == ("degraded", "not_committing")
    assert "partition(s) 3" in reason.text
    assert "did not move in 15 s" in reason.text


def test_a_missing_callouts_topic_is_down() -> None:
    details = _details(consumer_lag=_lag(topic_exists=False, partitions={}))
    assert _conditions(details) == [("down", "callouts_topic_missing")]


def test_kafka_and_postgresql_unreachable_are_one_reason_each_and_down() -> None:
    details = _details(
        postgresql={"error": "could not connect to PostgreSQL at db:5432: refused"},
        kafka={"error": "could not reach Kafka at k:9092"},
        connections={},
        consumer_lag={"group": "workers", "error": "could not reach Kafka at k:9092"},
        dead_letters={"error": "could not reach Kafka at k:9092"},
    )
    assert _conditions(details) == [
        ("down", "postgresql_unreachable"),
        ("down", "kafka_unreachable"),
    ]
    text = render({"verdict": "down", "reasons": [], **details})
    assert "unknown (Kafka cannot be read)" in text
    assert "connections: unknown (PostgreSQL cannot be read)" in text


def test_every_webhook_inactive_is_down_and_some_inactive_degraded() -> None:
    dead = _connection(webhooks=[_hook("Tickets", "deactivated"), _hook("Companies", "pending")])
    assert _conditions(_details(connections={"acme": dead})) == [("down", "webhooks_inactive")]
    some = _connection(webhooks=[_hook("Tickets", "deactivated"), _hook("Companies")])
    assert _conditions(_details(connections={"acme": some})) == [("degraded", "webhook_inactive")]
    none = _connection(webhooks=[])
    assert _conditions(_details(connections={"acme": none})) == [("degraded", "no_webhooks")]


def test_webhooks_held_after_a_teardown_are_meant() -> None:
    held = _connection(
        webhooks=[],
        provisioner={
            "last_pass_at": NOW,
            "last_outcome": "applied",
            "last_steps": 1,
            "last_error": None,
            "held_at": NOW,
            "held_reason": "teardown (cli)",
        },
    )
    assert _conditions(_details(connections={"acme": held})) == []


def test_a_lockout_is_degraded_and_its_end_reads_in_the_future() -> None:
    locked = _connection(
        lockout={
            "failures": 2,
            "locked_until": NOW + timedelta(seconds=293),
            "failure_reason": "Autotask rejected the credentials",
            "failed_at": NOW - timedelta(minutes=1),
        }
    )
    [reason] = assess(_details(connections={"acme": locked}), OPTIONS)
    assert (reason.severity, reason.condition, reason.connection) == (
        "degraded",
        "locked_out",
        "acme",
    )
    assert "locked out until 2026-12-07T08:04:53+00:00 (in 5 min)" in reason.text


def test_pending_dead_letters_and_a_failed_sweep_are_degraded() -> None:
    failing = _connection(
        dead_letters={"pending": {"PermissionDeniedError": 2}, "replayed": 5},
        sweeps=[
            {
                "entity": "Contacts",
                "mode": "ids",
                "status": "failed",
                "started_at": NOW - timedelta(minutes=6),
                "finished_at": NOW - timedelta(minutes=5),
                "repaired": 0,
                "error": "deadline",
                "last_success_at": NOW - timedelta(hours=2),
                "failed": [{"mode": "ids", "at": NOW - timedelta(minutes=5)}],
            }
        ],
    )
    reasons = assess(_details(connections={"acme": failing}), OPTIONS)
    assert [(r.severity, r.condition) for r in reasons] == [
        ("degraded", "sweep_failed"),
        ("degraded", "dead_letters_pending"),
    ]
    assert "last sweep failed: Contacts (ids, 5 min ago)" in reasons[0].text
    assert "2 dead letter(s) pending (PermissionDeniedError 2)" in reasons[1].text


def test_replayed_dead_letters_are_not_a_problem() -> None:
    replayed = _connection(dead_letters={"pending": {}, "replayed": 5})
    assert _conditions(_details(connections={"acme": replayed})) == []


def test_the_spool_counts_only_once_callouts_stay_in_it() -> None:
    moving = _connection(spool={"rows": 3, "oldest": NOW - timedelta(seconds=5)})
    assert _conditions(_details(connections={"acme": moving})) == []
    stuck = _connection(spool={"rows": 3, "oldest": NOW - timedelta(minutes=5)})
    assert _conditions(_details(connections={"acme": stuck})) == [("degraded", "spool_waiting")]


def test_the_budget_is_degraded_where_sweeps_pause() -> None:
    # This deployment used 4,600 calls of its 5,000-call share (half of 10,000): 92%.
    budget = _budget(
        UsageRow("acme", project_calls=4_600, calls_since_reading=0, threshold=10_000,
                 tenant_calls=6_000, timeframe_minutes=60, reading_age=30.0),
        NOW,
        OPTIONS.share,
    )  # fmt: skip
    assert budget is not None
    assert (budget["share_calls"], budget["used"]) == (5_000, 0.92)
    high = _connection(api_budget=budget)
    assert _conditions(_details(connections={"acme": high})) == [("degraded", "budget_high")]
    calm = _budget(UsageRow("acme", 100, 0, 10_000, 1_000, 60, 30.0), NOW, OPTIONS.share)
    assert _conditions(_details(connections={"acme": _connection(api_budget=calm)})) == []


def test_a_scope_change_and_ids_left_for_the_sweep_are_not_problems() -> None:
    changing = _connection(
        scope={
            "following": False,
            "pending": [{"entity": "Tickets", "running": True}],
            "last_applied_at": NOW,
        },
        unresolved_ids={"Tickets": 4},
    )
    assert _conditions(_details(connections={"acme": changing})) == []


def test_a_disabled_connection_is_not_judged() -> None:
    disabled = _connection(enabled=False, webhooks=[], dead_letters={"pending": {"X": 1}})
    assert _conditions(_details(connections={"acme": disabled})) == []


def test_dead_letters_of_a_connection_no_longer_configured_count() -> None:
    dead = {**_details()["dead_letters"], "pending": 1, "by_connection": {"gone": {"X": 1}}}
    assert _conditions(_details(dead_letters=dead)) == [("degraded", "dead_letters_pending")]
