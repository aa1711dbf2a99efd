"""Webhook names: deterministic, at most 50 characters, one per connection and entity, and
recognised exactly (never a look-alike)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.provisioner import naming
from shared.entities import webhook_entities

ENTITIES = [spec.rest_name for spec in webhook_entities()]
CONNECTION_NAMES = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)


def test_a_short_connection_keeps_its_full_name():
    assert naming.webhook_name("acme", "Tickets") == "autotask-sync:acme:Tickets"


def test_a_long_connection_is_cut_with_a_hash_so_two_long_names_never_collide():
    first = "msp-" + "a" * 50 + "-one"
    second = "msp-" + "a" * 50 + "-two"
    one = naming.webhook_name(first, "ConfigurationItems")
    two = naming.webhook_name(second, "ConfigurationItems")
    assert len(one) <= 50
    assert len(two) <= 50
    assert one != two
    assert one.startswith("autotask-sync:msp-aaa")
    assert one.endswith(":ConfigurationItems")
    assert "~" in one


@settings(max_examples=200)
@given(connection=CONNECTION_NAMES, other=CONNECTION_NAMES, entity=st.sampled_from(ENTITIES))
def test_names_fit_and_are_recognised_only_for_their_own_connection_and_entity(
    connection, other, entity
):
    name = naming.webhook_name(connection, entity)
    assert len(name) <= naming.MAX_NAME_LENGTH
    assert name == naming.webhook_name(connection, entity)  # deterministic
    assert naming.is_ours(name, connection=connection, entity=entity)
    assert naming.is_ours(f" {name.upper()} ", connection=connection, entity=entity)
    assert naming.has_project_prefix(name)
    if other != connection:
        assert not naming.is_ours(name, connection=other, entity=entity)
    for different in ENTITIES:
        if different != entity:
            assert not naming.is_ours(name, connection=connection, entity=different)


def test_look_alikes_and_other_values_are_not_ours():
    for name in (
        "autotask-sync:acme:Tickets (copy)",
        "autotask-sync:acme:Ticket",
        "x-autotask-sync:acme:Tickets",
        "",
        None,
        42,
    ):
        assert not naming.is_ours(name, connection="acme", entity="Tickets")


def test_the_registration_is_read_back_from_a_callout_url_whatever_the_host():
    url = naming.callout_url("https://hooks.example.com/", "abcdefghijklmnop")
    assert url == "https://hooks.example.com/v1/callouts/abcdefghijklmnop"
    assert naming.registration_in(url) == "abcdefghijklmnop"
    assert naming.registration_in("https://elsewhere/v1/callouts/abcdefghijklmnop") == (
        "abcdefghijklmnop"
    )
    assert naming.deactivation_url("https://h", "r1") == "https://h/v1/deactivations/r1"
    for other in ("https://h/v1/deactivations/r1", "https://h/v1/callouts/", "not a url", None):
        assert naming.registration_in(other) is None
