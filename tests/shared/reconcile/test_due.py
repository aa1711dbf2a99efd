"""What the scheduler starts, and when: pure schedule logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.entities import COMPANIES, CONTACTS, RESOURCES, TICKET_NOTES, TICKETS, EntitySpec
from shared.reconcile.due import LoadState, Schedule, View
from shared.scope.rules import SyncScope

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENTITIES = (TICKETS, COMPANIES, CONTACTS, TICKET_NOTES, RESOURCES)


def _interval(spec: EntitySpec) -> timedelta:
    return timedelta(hours=1) if spec is RESOURCES else timedelta(minutes=5)


SCHEDULE = Schedule(interval=_interval, id_interval=timedelta(hours=6))
LOADED = LoadState(loaded=True)


def _view(last: dict[tuple[str, str], datetime], **loads: LoadState) -> View:
    return View(
        synced={"acme": ENTITIES},
        loads={("acme", s.rest_name): loads.get(s.rest_name, LOADED) for s in ENTITIES},
        last={("acme", e, m): at for (e, m), at in last.items()},
    )


def _jobs(view: View) -> dict[str, str]:
    return {j.entity: j.mode for j in SCHEDULE.due(NOW, view)}


def test_a_new_connection_backfills_every_entity_and_its_metadata() -> None:
    view = View(synced={"acme": ENTITIES})
    assert _jobs(view) == {
        **{s.rest_name: "backfill" for s in ENTITIES},
        "*": "metadata",
    }


def test_an_unfinished_complete_read_resumes_before_anything_else() -> None:
    view = _view({}, Tickets=LoadState(loaded=True, walking="resync"))
    [job] = [j for j in SCHEDULE.due(NOW, view) if j.entity == "Tickets"]
    assert (job.mode, job.trigger) == ("resync", "resume")


def test_incremental_sweeps_follow_their_interval() -> None:
    recent = NOW - timedelta(minutes=2)
    old = NOW - timedelta(minutes=6)
    last = {(s.rest_name, "incremental"): recent for s in ENTITIES}
    last |= {(s.rest_name, "ids"): recent for s in ENTITIES}
    last[("*", "metadata")] = recent
    assert _jobs(_view(last)) == {}
    last[("Tickets", "incremental")] = old
    last[("Resources", "incremental")] = old  # its interval is an hour
    assert _jobs(_view(last)) == {"Tickets": "incremental"}


def test_id_sweeps_only_for_entities_without_a_delete_log() -> None:
    recent = NOW - timedelta(minutes=1)
    last = {(s.rest_name, "incremental"): recent for s in ENTITIES}
    last[("*", "metadata")] = recent
    assert _jobs(_view(last)) == {"Companies": "ids", "Contacts": "ids", "Resources": "ids"}
    # A complete read also proved which ids exist.
    last[("Companies", "full")] = recent
    assert "Companies" not in _jobs(_view(last))


@given(st.dictionaries(st.sampled_from([s.rest_name for s in ENTITIES]),
                       st.integers(min_value=0, max_value=10_000)))  # fmt: skip
def test_at_most_one_job_per_entity_and_never_one_run_just_now(ages: dict[str, int]) -> None:
    last = {(e, m): NOW - timedelta(seconds=age) for e, age in ages.items()
            for m in ("incremental", "ids")}  # fmt: skip
    jobs = SCHEDULE.due(NOW, _view(last))
    assert len({j.key for j in jobs}) == len(jobs)
    for job in jobs:
        if job.entity in ages and job.mode in ("incremental", "ids"):
            assert ages[job.entity] >= 5 * 60


def _quiet() -> dict[tuple[str, str], datetime]:
    """Every entity swept a moment ago: only a load or a scope change can be due."""
    recent = NOW - timedelta(minutes=1)
    last = {(s.rest_name, m): recent for s in ENTITIES for m in ("incremental", "ids")}
    last[("*", "metadata")] = recent
    return last


def _scoped(
    scope: dict[str, object], applied: dict[str, dict[str, object]], **loads: LoadState
) -> View:
    view = _view(_quiet(), **loads)
    return View(
        synced=view.synced,
        loads=view.loads,
        last=view.last,
        scopes={"acme": SyncScope.parse(scope)},
        applied={("acme", e): SyncScope.parse(s) for e, s in applied.items()},
    )


def test_a_scope_change_reconciles_the_parent_then_its_children() -> None:
    before = {"companies": {"company_ids": [0, 4]}}
    after = {"companies": {"company_ids": [0]}}
    applied = {s.rest_name: before for s in ENTITIES}
    assert _jobs(_scoped(after, applied)) == {"Companies": "scope"}
    applied["Companies"] = after  # its run finished
    assert _jobs(_scoped(after, applied)) == {"Contacts": "scope"}
    applied["Contacts"] = after
    assert _jobs(_scoped(after, applied)) == {}
    # Recorded before the change, the boundary of tickets and notes did not move.
    assert _jobs(_scoped(after, {s.rest_name: before for s in ENTITIES} | {
        "Companies": after, "Contacts": after})) == {}  # fmt: skip


def test_an_entity_the_scope_no_longer_syncs_gets_its_rows_out() -> None:
    scope = {"entities": ["Tickets", "TicketNotes", "Companies", "Resources"]}
    applied: dict[str, dict[str, object]] = {s.rest_name: {} for s in ENTITIES}
    view = _scoped(scope, applied)
    view = View(
        synced={"acme": tuple(s for s in ENTITIES if s is not CONTACTS)},
        loads=view.loads,
        last=view.last,
        scopes=view.scopes,
        applied=view.applied,
    )
    assert _jobs(view) == {"Contacts": "scope"}


def test_under_a_restricted_scope_children_load_after_their_parent() -> None:
    scope = {"tickets": {"include_queues": [3]}}
    unloaded = LoadState()
    view = _scoped(scope, {}, Tickets=unloaded, TicketNotes=unloaded)
    assert _jobs(view) == {"Tickets": "backfill"}
    view = _scoped(scope, {}, TicketNotes=unloaded)
    assert _jobs(view) == {"TicketNotes": "backfill"}
    # Unrestricted, a note is in scope whatever its ticket: both load at once.
    view = _scoped({}, {}, Tickets=unloaded, TicketNotes=unloaded)
    assert _jobs(view) == {"Tickets": "backfill", "TicketNotes": "backfill"}
