"""What people call things in the tenant, looked up: companies by name, picklist values by label.

The sync stores ids (company ids, queue and status values); people know names (``Acme Ltd``,
``Level I Support``). Commands read the tenant through the connection's
:class:`~shared.autotask.AutotaskClient` at interactive priority and turn one into the other:

- :func:`list_companies` pages through the tenant's companies (id, name, type, active), filtered
  by Autotask itself (``contains`` on the name, the company type);
- :func:`read_picklist` reads one picklist field of an entity (``queueID`` of Tickets...), and
  :class:`Picklist` finds a value by its label;
- :func:`resolve_scope` turns a sync scope document that names companies and picklist labels
  into the stored :class:`~shared.scope.rules.SyncScope` (ids only), and keeps each id's name so
  a command can show both.

Names match exactly, ignoring case and surrounding spaces; a name that matches nothing or more
than one thing is an error listing the candidates. Whether the ids exist at all (ids given as
ids) is for the connection test's scope check to say (``cli/checks.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.autotask import (
    AutotaskClient,
    BudgetConfig,
    ClientConfig,
    F,
    LimiterConfig,
    Priority,
    Query,
    RetryPolicy,
    or_,
)
from shared.errors import ConfigError
from shared.integers import parse_int
from shared.scope.rules import SyncScope

_NOW = Priority.INTERACTIVE
PAGE_SIZE = 500
COMPANY_FIELDS = ("id", "companyName", "companyType", "isActive")
COMPANY_IDS = "companies.company_ids"
"""The scope attribute holding company ids (names are looked up)."""
_NAMES_PER_QUERY = 100  # one `or` of eq conditions per call, well under the 500-condition ceiling
_SHOWN = 20  # choices or candidates listed in one error

CLIENT_CONFIG = ClientConfig(
    default_priority=_NOW,
    request_timeout=timedelta(seconds=30),
    retry=RetryPolicy(
        max_attempts=3, base_delay=timedelta(seconds=1), deadline=timedelta(minutes=1)
    ),
    # A person is waiting, and interactive calls never wait for budget: reading
    # ThresholdInformation to pace them would only cost one more call.
    limiter=LimiterConfig(budget=BudgetConfig(enabled=False)),
)
"""How the clients of lookup commands are configured (a person waits for the answer)."""


@dataclass(frozen=True, slots=True)
class PicklistField:
    """A picklist field of an entity, and what people call its values."""

    entity: str
    field: str
    noun: str


SCOPE_PICKLISTS: dict[str, PicklistField] = {
    "tickets.include_queues": PicklistField("Tickets", "queueID", "queues"),
    "tickets.exclude_queues": PicklistField("Tickets", "queueID", "queues"),
    "tickets.include_categories": PicklistField("Tickets", "ticketCategory", "ticket categories"),
    "tickets.exclude_categories": PicklistField("Tickets", "ticketCategory", "ticket categories"),
    "tickets.include_statuses": PicklistField("Tickets", "status", "ticket statuses"),
    "tickets.exclude_statuses": PicklistField("Tickets", "status", "ticket statuses"),
    "companies.company_types": PicklistField("Companies", "companyType", "company types"),
}
"""The scope attributes holding picklist values, by ``section.attribute``."""
COMPANY_TYPE = SCOPE_PICKLISTS["companies.company_types"]


def _key(text: str) -> str:
    """How names compare: exact, ignoring case and surrounding spaces."""
    return text.strip().casefold()


# --- picklists --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Picklist:
    """One picklist of the tenant: value -> label, in the tenant's order."""

    of: PicklistField
    choices: dict[int, str]

    def label(self, value: int | None) -> str | None:
        return None if value is None else self.choices.get(value)

    def resolve(self, given: str) -> int:
        """The value ``given`` names: a value, or a label (ConfigError listing the choices)."""
        value = parse_int(given)
        if value is not None:
            if value in self.choices:
                return value
            raise ConfigError(f"{value} is not one of the {self.of.noun}; {self.listed()}")
        matches = [v for v, label in self.choices.items() if _key(label) == _key(given)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise _ambiguous(given, self.of.noun, [(v, self.choices[v]) for v in matches])
        raise ConfigError(f"{given!r} is not one of the {self.of.noun}; {self.listed()}")

    def listed(self) -> str:
        """``valid queues: 8 (Level I Support), ...`` (the first twenty)."""
        return f"valid {self.of.noun}: " + _listed(list(self.choices.items()))


async def read_picklist(client: AutotaskClient, of: PicklistField) -> Picklist:
    """The tenant's picklist ``of``; ConfigError when the tenant reports none on that field."""
    fields = {f.name: f for f in await client.field_info(of.entity)}
    info = fields.get(of.field)
    if info is None or not info.is_pick_list:
        raise ConfigError(
            f"the tenant reports no {of.field} picklist on {of.entity}, so {of.noun} cannot be "
            "named or filtered"
        )
    choices: dict[int, str] = {}
    for value, label in info.picklist().items():
        number = parse_int(value)
        if number is not None:
            choices[number] = label
    return Picklist(of=of, choices=choices)


# --- companies --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Company:
    """A company as people pick it: id, name, type (picklist value) and whether it is active."""

    id: int
    name: str
    type: int | None
    active: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Company:
        company_id = parse_int(row.get("id"), minimum=0)
        if company_id is None:
            raise ConfigError(f"Autotask returned a company without an id: {row.get('id')!r}")
        return cls(
            id=company_id,
            name=str(row.get("companyName") or ""),
            type=parse_int(row.get("companyType")),
            active=bool(row.get("isActive")),
        )


def by_name(companies: Iterable[Company]) -> list[Company]:
    """Sorted by name (ignoring case), then id."""
    return sorted(companies, key=lambda c: (_key(c.name), c.id))


async def list_companies(
    client: AutotaskClient, *, search: str | None = None, company_type: int | None = None
) -> list[Company]:
    """Every company of the tenant (those whose name contains ``search``, of ``company_type``),
    sorted by name; Autotask filters, 500 rows a call."""
    conditions = []
    if search:
        conditions.append(F("companyName").contains(search))
    if company_type is not None:
        conditions.append(F("companyType").eq(company_type))
    query = (Query.where(*conditions) if conditions else Query.all()).include(*COMPANY_FIELDS)
    rows = client.query("Companies", query.limit(PAGE_SIZE), priority=_NOW)
    return by_name([Company.from_row(row) async for row in rows])


async def companies_named(client: AutotaskClient, names: Iterable[str]) -> dict[str, list[Company]]:
    """The companies each of ``names`` names exactly (ignoring case), by name as given."""
    given = list(names)
    wanted = {_key(name): name for name in given}
    found: dict[str, list[Company]] = {key: [] for key in wanted}
    unique = list(wanted.values())
    for start in range(0, len(unique), _NAMES_PER_QUERY):
        chunk = unique[start : start + _NAMES_PER_QUERY]
        conditions = [F("companyName").eq(name.strip()) for name in chunk]
        query = Query.where(or_(*conditions) if len(conditions) > 1 else conditions[0])
        async for row in client.query(
            "Companies", query.include(*COMPANY_FIELDS).limit(PAGE_SIZE), priority=_NOW
        ):
            company = Company.from_row(row)
            # Autotask's eq may be looser than exact (trailing spaces, collations): check here.
            if _key(company.name) in found:
                found[_key(company.name)].append(company)
    return {name: by_name(found[_key(name)]) for name in given}


async def companies_with_ids(client: AutotaskClient, ids: Iterable[int]) -> dict[int, Company]:
    """The companies with ``ids`` that exist (and the API user can see), by id."""
    result = await client.fetch_by_ids(
        "Companies", ids, include_fields=COMPANY_FIELDS, priority=_NOW
    )
    return {company_id: Company.from_row(row) for company_id, row in result.found.items()}


async def similar_companies(client: AutotaskClient, name: str) -> list[Company]:
    """A few companies whose name contains ``name`` (or, failing that, its longest word)."""
    for text in dict.fromkeys([name.strip(), max(name.split(), key=len, default="")]):
        if len(text) < 2:
            continue
        query = Query.where(F("companyName").contains(text)).include(*COMPANY_FIELDS)
        walk = client.query_pages("Companies", query.limit(_SHOWN), priority=_NOW)
        try:
            page = await anext(walk)  # the first few are enough
        finally:
            close = getattr(walk, "aclose", None)
            if close is not None:
                await close()
        if page.items:
            return by_name(Company.from_row(row) for row in page.items)
    return []


async def _one_company(client: AutotaskClient, name: str, matches: Sequence[Company]) -> Company:
    """The one company of ``matches`` (those named ``name``); ConfigError listing the
    candidates when there are several or none."""
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise _ambiguous(name, "companies", [(c.id, c.name) for c in matches])
    similar = await similar_companies(client, name)
    hint = (
        f"companies with similar names: {_listed([(c.id, c.name) for c in similar])}"
        if similar
        else "no company name contains it either"
    )
    raise ConfigError(
        f"no company is called {name!r}; {hint} (`autotask-sync companies list --search TEXT` "
        "lists them)"
    )


# --- sync scopes ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolvedScope:
    """A scope with ids only, and the name of every id that was looked up."""

    scope: SyncScope
    names: dict[str, dict[int, str]] = field(default_factory=dict)
    """By scope attribute (``companies.company_ids``): id -> company name or picklist label.
    An attribute that was not looked up is absent."""

    def lines(self) -> list[str]:
        """``companies.company_ids: 0 (Own Company), 17 (Acme Ltd)``: one line per id list in
        use (and the entities), or ``everything``."""
        lines = []
        if self.scope.entities is not None:
            lines.append("entities: " + ", ".join(self.scope.entities))
        for attribute in _ID_ATTRIBUTES:
            ids = scope_values(self.scope, attribute)
            if not ids:
                continue
            names = self.names.get(attribute)
            shown = [str(i) if names is None else f"{i} ({names.get(i, 'not found')})" for i in ids]
            lines.append(f"{attribute}: {', '.join(shown)}")
        return lines or ["everything"]


_ID_ATTRIBUTES = (*SCOPE_PICKLISTS, COMPANY_IDS)


def names_in(document: Mapping[str, Any]) -> bool:
    """Whether the scope ``document`` names anything (rather than giving ids only)."""
    return any(_is_name(entry) for _attr, entries in _id_lists(document) for entry in entries)


def without_names(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with every name replaced by id 0: its shape can then be checked before
    anything is looked up."""
    return _replaced(document, {attr: [0 if _is_name(e) else e for e in entries]
                                for attr, entries in _id_lists(document)})  # fmt: skip


async def resolve_scope(client: AutotaskClient, document: Mapping[str, Any]) -> ResolvedScope:
    """The scope ``document`` describes, names looked up in the tenant, and every id's name.

    ConfigError when the document is not a valid scope or a name matches nothing or several
    things (every such name is listed, with its candidates). Ids given as ids are kept as
    they are, whether or not they exist (the connection test's scope check says)."""
    lists = dict(_id_lists(document))
    SyncScope.parse(without_names(document))  # its shape first, before any call
    problems: list[str] = []
    resolved: dict[str, list[Any]] = {}
    names: dict[str, dict[int, str]] = {}
    picklists: dict[PicklistField, Picklist | ConfigError] = {}
    for attribute, of in SCOPE_PICKLISTS.items():
        entries = lists.get(attribute)
        if not entries:
            continue
        if of not in picklists:
            try:
                picklists[of] = await read_picklist(client, of)
            except ConfigError as exc:
                picklists[of] = exc
        picklist = picklists[of]
        if isinstance(picklist, ConfigError):
            if any(_is_name(e) for e in entries):
                problems.append(f"{attribute}: {picklist}")
            continue
        resolved[attribute] = []
        for entry in entries:
            try:
                resolved[attribute].append(picklist.resolve(entry) if _is_name(entry) else entry)
            except ConfigError as exc:
                problems.append(f"{attribute}: {exc}")
        names[attribute] = dict(picklist.choices)
    if lists.get(COMPANY_IDS):
        entries = lists[COMPANY_IDS]
        given = [e for e in entries if _is_name(e)]
        named = await companies_named(client, given) if given else {}
        ids: dict[int, str] = {}
        resolved[COMPANY_IDS] = []
        for entry in entries:
            if not _is_name(entry):
                resolved[COMPANY_IDS].append(entry)
                continue
            try:
                company = await _one_company(client, entry, named[entry])
            except ConfigError as exc:
                problems.append(f"{COMPANY_IDS}: {exc}")
                continue
            resolved[COMPANY_IDS].append(company.id)
            ids[company.id] = company.name
        unnamed = {parse_int(e) for e in resolved[COMPANY_IDS]} - set(ids) - {None}
        if unnamed:
            found = await companies_with_ids(client, (i for i in unnamed if i is not None))
            ids |= {i: company.name for i, company in found.items()}
        names[COMPANY_IDS] = ids
    if problems:
        raise ConfigError("sync scope: " + "; ".join(problems))
    return ResolvedScope(scope=SyncScope.parse(_replaced(document, resolved)), names=names)


def _is_name(entry: Any) -> bool:
    """A name: text that is not a number (``"17"`` is id 17)."""
    return isinstance(entry, str) and parse_int(entry) is None


def _id_lists(document: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """The id lists of ``document`` that are lists, by attribute (anything else is left for
    the scope's own validation to refuse)."""
    out = []
    for attribute in _ID_ATTRIBUTES:
        section, name = attribute.split(".")
        group = document.get(section)
        if isinstance(group, Mapping) and isinstance(group.get(name), list):
            out.append((attribute, list(group[name])))
    return out


def _replaced(document: Mapping[str, Any], lists: Mapping[str, list[Any]]) -> dict[str, Any]:
    """A copy of ``document`` with the id lists ``lists`` (by attribute) put in."""
    copy = {key: dict(value) if isinstance(value, Mapping) else value
            for key, value in document.items()}  # fmt: skip
    for attribute, entries in lists.items():
        section, name = attribute.split(".")
        copy[section][name] = entries
    return copy


def scope_values(scope: SyncScope, attribute: str) -> list[int]:
    """The ids ``scope`` lists under ``attribute`` (``section.name``)."""
    section, name = attribute.split(".")
    ids: list[int] = getattr(getattr(scope, section), name)
    return ids


def _listed(choices: Sequence[tuple[int, str]]) -> str:
    shown = ", ".join(f"{value} ({label})" for value, label in choices[:_SHOWN])
    more = len(choices) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _ambiguous(name: str, noun: str, matches: Sequence[tuple[int, str]]) -> ConfigError:
    return ConfigError(
        f"{len(matches)} {noun} are called {name!r}: {_listed(matches)}; give the id of the one "
        "you mean"
    )


__all__ = [
    "CLIENT_CONFIG",
    "COMPANY_IDS",
    "COMPANY_TYPE",
    "SCOPE_PICKLISTS",
    "Company",
    "Picklist",
    "PicklistField",
    "ResolvedScope",
    "companies_named",
    "companies_with_ids",
    "list_companies",
    "names_in",
    "read_picklist",
    "resolve_scope",
    "scope_values",
    "similar_companies",
    "without_names",
]
