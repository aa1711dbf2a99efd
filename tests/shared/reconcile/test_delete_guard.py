"""The pure delete decision: nothing after a partial read, never more than the guard allows,
only what the confirming read did not return."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.reconcile.delete_guard import DeletePolicy, candidates, check, confirmed

POLICY = DeletePolicy(max_share=0.2, min_rows=5)
IDS = st.sets(st.integers(min_value=0, max_value=400), max_size=120)


def test_a_partial_read_deletes_nothing_whatever_it_missed() -> None:
    refusal = check(complete=False, live=100, candidates=1, policy=POLICY)
    assert refusal is not None
    assert "partial read" in refusal.reason


def test_half_the_rows_gone_is_refused_with_what_to_do() -> None:
    refusal = check(complete=True, live=100, candidates=50, policy=POLICY, what="Companies rows")
    assert refusal is not None
    assert refusal.share == 0.5
    assert "50 of 100 live Companies rows (50%)" in refusal.reason
    assert "--max-delete-share" in refusal.reason


def test_a_few_deletes_in_a_small_mirror_pass() -> None:
    assert check(complete=True, live=3, candidates=1, policy=POLICY) is None
    assert check(complete=True, live=100, candidates=20, policy=POLICY) is None
    assert check(complete=True, live=100, candidates=21, policy=POLICY) is not None


@given(live=IDS, seen=IDS, present=IDS)
def test_only_unseen_and_unconfirmed_live_ids_are_deleted(
    live: set[int], seen: set[int], present: set[int]
) -> None:
    missing = candidates(live=live, seen=seen)
    gone = confirmed(candidates=missing, still_there=present)
    assert missing == live - seen
    assert gone <= missing
    assert not gone & present
    assert not gone & seen


@given(
    live=st.integers(min_value=0, max_value=10_000),
    missing=st.integers(min_value=0, max_value=10_000),
    share=st.floats(min_value=0, max_value=1),
    minimum=st.integers(min_value=0, max_value=50),
)
def test_what_passes_the_guard_is_small_or_within_the_share(
    live: int, missing: int, share: float, minimum: int
) -> None:
    policy = DeletePolicy(max_share=share, min_rows=minimum)
    if check(complete=True, live=live, candidates=missing, policy=policy) is None:
        assert missing < max(1, minimum) or (live > 0 and missing / live <= share)
