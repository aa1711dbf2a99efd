"""Generated configuration items, tickets and ticket notes."""

from __future__ import annotations

from datetime import timedelta

from tools.autotask_sim.catalog import picklists as pl
from tools.autotask_sim.catalog import sample_text as txt
from tools.autotask_sim.clock import canonical
from tools.autotask_sim.datagen.base import EPOCH, Gen, udfs_of
from tools.autotask_sim.jsontypes import Record


def configuration_items(gen: Gen, company_ids: list[int]) -> list[Record]:
    rng, n, pick = gen.rng, gen.config.configuration_items, gen.pick
    created = gen.stamper("ConfigurationItems", "createDate")
    modified = gen.stamper("ConfigurationItems", "lastModifiedTime")
    install = gen.stamper("ConfigurationItems", "installDate")
    warranty = gen.stamper("ConfigurationItems", "warrantyExpirationDate")
    out: list[Record] = []
    for cid, t in zip(gen.ids(500, n), gen.sorted_times(n), strict=True):
        product = pick(txt.CI_PRODUCTS)
        out.append(
            {
                "id": cid,
                "companyID": pick(company_ids),
                "contactID": None,
                "productID": 200 + txt.CI_PRODUCTS.index(product),
                "configurationItemType": pick((1, 1, 1, 2, 3, 4, 5)),
                "referenceTitle": f"{product} #{cid}",
                "referenceNumber": None,
                "serialNumber": f"SN{rng.randrange(16**8):08X}",
                "isActive": rng.random() > 0.1,
                "installDate": install(t // 86_400_000 * 86_400_000),
                "warrantyExpirationDate": warranty(
                    (t + 3 * 365 * 86_400_000) // 86_400_000 * 86_400_000
                ),
                "createDate": created(t),
                "lastModifiedTime": modified(gen.later(t)),
                "userDefinedFields": udfs_of(
                    gen,
                    {
                        "Warranty Vendor": lambda r: r.choice(("Dell", "HP", "Lenovo", None)),
                        "RAM GB": lambda r: r.choice(("8", "16", "32", None)),
                    },
                ),
            }
        )
    return out


def ticket_number(create_ms: int, sequence: int) -> str:
    """``T20250101.0001``: creation day plus the day's sequence number."""
    day = EPOCH + timedelta(milliseconds=create_ms)
    return f"T{day:%Y%m%d}.{sequence:04d}"


def _day_code(create_ms: int) -> str:
    return f"T{EPOCH + timedelta(milliseconds=create_ms):%Y%m%d}."


def tickets(
    gen: Gen, company_ids: list[int], contacts: list[Record], resource_ids: list[int]
) -> tuple[list[Record], list[int]]:
    rng, n, pick = gen.rng, gen.config.tickets, gen.pick
    st = {f: gen.stamper("Tickets", f) for f in ("createDate", "lastActivityDate", "dueDateTime")}
    tracked = gen.stamper("Tickets", "lastTrackedModificationDateTime")
    completed = gen.stamper("Tickets", "completedDate")
    contacts_by_company: dict[int, list[int]] = {}
    for c in contacts:
        contacts_by_company.setdefault(c["companyID"], []).append(c["id"])
    statuses = [p.value for p in pl.TICKET_STATUS]
    queues = [p.value for p in pl.TICKET_QUEUE]
    subs = [(p.parent_value, p.value) for p in pl.SUB_ISSUE_TYPE]
    descriptions = [
        " ".join(txt.DESCRIPTION_SENTENCES[i : i + k])
        for i in range(len(txt.DESCRIPTION_SENTENCES))
        for k in (1, 2, 3)
    ]
    titles = [s + c for s in txt.TICKET_SUBJECTS for c in txt.TICKET_CONTEXT]
    impacts = ("Low", "Medium", "High", None)
    out: list[Record] = []
    day, seq, code = -1, 0, ""
    times = gen.sorted_times(n)
    for tid, t in zip(gen.ids(7000, n), times, strict=True):
        if t // 86_400_000 != day:
            day, seq, code = t // 86_400_000, 0, _day_code(t)
        seq += 1
        company = pick(company_ids)
        company_contacts = contacts_by_company.get(company)
        status = pick(statuses)
        issue, sub = pick(subs)
        mod = gen.later(t)
        out.append(
            {
                "id": tid,
                "ticketNumber": f"{code}{seq:04d}",
                "title": pick(titles),
                "description": pick(descriptions),
                "status": status,
                "priority": pick((1, 2, 2, 2, 3, 3, 4)),
                "queueID": pick(queues),
                "ticketType": pick((1, 1, 2, 2, 3, 4, 5)),
                "source": pick((-1, 2, 4, 4, 8)),
                "issueType": issue,
                "subIssueType": sub,
                "companyID": company,
                "contactID": pick(company_contacts) if company_contacts else None,
                "assignedResourceID": pick(resource_ids) if rng.random() < 0.8 else None,
                "configurationItemID": None,
                "creatorResourceID": pick(resource_ids),
                "dueDateTime": st["dueDateTime"](t + rng.randrange(1, 14) * 86_400_000),
                "estimatedHours": pick((0.5, 1.0, 2.0, 4.0, None)),
                "completedDate": completed(mod) if status == pl.TICKET_STATUS_COMPLETE else None,
                "createDate": st["createDate"](t),
                "lastActivityDate": st["lastActivityDate"](gen.later(mod)),
                "lastTrackedModificationDateTime": tracked(mod),
                "userDefinedFields": _ticket_udfs(gen, tid, pick(impacts)),
            }
        )
    return out, times


def _ticket_udfs(gen: Gen, ticket_id: int, impact: str | None) -> tuple[Record, ...]:
    shared = gen.udfs(("External Reference", None), ("Customer Impact", impact))
    if ticket_id % 3 == 0:
        return shared  # no external reference: the whole tuple is shared
    return ({"name": "External Reference", "value": f"EXT-{ticket_id}"}, shared[1])


def notes(
    gen: Gen, tickets: list[Record], starts: list[int], resource_ids: list[int]
) -> list[Record]:
    rng, n, pick = gen.rng, gen.config.ticket_notes, gen.pick
    if not tickets or n == 0:
        return []
    created = gen.stamper("TicketNotes", "createDateTime")
    activity = gen.stamper("TicketNotes", "lastActivityDate")
    out: list[Record] = []
    # Notes are written after their ticket; creation order across notes follows time, so ids
    # increase with createDateTime like every other entity.
    times = gen.sorted_times(n, start_ms=starts[0])
    last_note: dict[int, int] = {}
    for nid, t in zip(gen.ids(30000, n), times, strict=True):
        # A ticket created before the note (binary search over the sorted creation times).
        lo, hi = 0, len(starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if starts[mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        index = int(rng.random() * lo) if lo else 0
        ticket = tickets[index]
        last_note[index] = t
        out.append(
            {
                "id": nid,
                "ticketID": ticket["id"],
                "title": pick(txt.NOTE_TITLES),
                "description": pick(txt.DESCRIPTION_SENTENCES),
                "noteType": pick((1, 2, 2, 3, 13)),
                "publish": pick((1, 1, 2, 4)),
                "creatorResourceID": pick(resource_ids),
                "createDateTime": created(t),
                "lastActivityDate": activity(t),
            }
        )
    # A note is ticket activity: the ticket's lastActivityDate is never older than its notes.
    ticket_activity = gen.stamper("Tickets", "lastActivityDate")
    for index, note_ms in last_note.items():
        ticket = tickets[index]
        if str(ticket["lastActivityDate"])[:23] < canonical(
            EPOCH + timedelta(milliseconds=note_ms)
        ):
            ticket["lastActivityDate"] = ticket_activity(note_ms)
    return out


__all__ = ["configuration_items", "notes", "ticket_number", "tickets"]
