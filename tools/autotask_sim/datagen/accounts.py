"""Generated resources, companies, contacts and contracts."""

from __future__ import annotations

import random

from tools.autotask_sim.catalog import sample_text as txt
from tools.autotask_sim.datagen.base import (
    FIRST_RESOURCE_ID,
    OWN_COMPANY_ID,
    SYSTEM_RESOURCE_ID,
    Gen,
    udfs_of,
)
from tools.autotask_sim.jsontypes import Record


def resources(gen: Gen) -> list[Record]:
    pick = gen.pick
    out: list[Record] = [
        _resource(SYSTEM_RESOURCE_ID, "Administrator", "System", "admin", 1),
    ]
    for i, rid in enumerate(gen.ids(FIRST_RESOURCE_ID, gen.config.resources)):
        first, last = pick(txt.FIRST_NAMES), pick(txt.LAST_NAMES)
        out.append(_resource(rid, first, last, f"{first[0]}{last}{i}".lower(), 2))
    api = out[-1]
    api.update(firstName="API", lastName="Integration", licenseType=7, title="API user")
    return out


def _resource(rid: int, first: str, last: str, user: str, license_type: int) -> Record:
    return {
        "id": rid,
        "userName": user[:32],
        "email": f"{user}@msp.example",
        "firstName": first,
        "lastName": last,
        "title": "Technician",
        "resourceType": "Employee",
        "licenseType": license_type,
        "isActive": True,
    }


def companies(gen: Gen, resource_ids: list[int]) -> list[Record]:
    rng, n, pick = gen.rng, gen.config.companies, gen.pick
    created = gen.stamper("Companies", "createDate")
    modified = gen.stamper("Companies", "lastTrackedModifiedDateTime")
    activity = gen.stamper("Companies", "lastActivityDate")
    ids = [OWN_COMPANY_ID, *gen.ids(174, n - 1)]
    times = gen.sorted_times(n)
    tiers = ("Gold", "Silver", "Bronze", None)
    out: list[Record] = []
    for cid, t in zip(ids, times, strict=True):
        name = f"{pick(txt.COMPANY_WORDS)} {pick(txt.COMPANY_SUFFIXES)}"
        if cid == OWN_COMPANY_ID:
            name = "Simulated MSP (own company)"
        mod = gen.later(t)
        out.append(
            {
                "id": cid,
                "companyName": name,
                "companyNumber": f"C{cid:06d}",
                "companyType": pick((1, 1, 1, 2, 3, 7)),
                "isActive": rng.random() > 0.08,
                "phone": f"+1-555-{rng.randrange(1000, 9999)}",
                "fax": None,
                "address1": f"{rng.randrange(1, 999)} {pick(txt.STREETS)}",
                "address2": None,
                "city": pick(txt.CITIES),
                "state": pick(txt.STATES),
                "postalCode": f"{rng.randrange(10000, 99999)}",
                "webAddress": f"https://www.example{cid}.com",
                "ownerResourceID": pick(resource_ids),
                "createDate": created(t),
                "lastActivityDate": activity(gen.later(mod)),
                "lastTrackedModifiedDateTime": modified(mod),
                "userDefinedFields": udfs_of(
                    gen,
                    {"Account Tier": lambda r: r.choice(tiers), "Billing Code": lambda r: None},
                ),
            }
        )
    return out


def contacts(gen: Gen, company_ids: list[int]) -> list[Record]:
    rng, n, pick = gen.rng, gen.config.contacts, gen.pick
    created = gen.stamper("Contacts", "createDate")
    modified = gen.stamper("Contacts", "lastModifiedDate")
    activity = gen.stamper("Contacts", "lastActivityDate")
    out: list[Record] = []
    langs = ("English", "Deutsch", "Français", None)
    for cid, t in zip(gen.ids(29684000, n), gen.sorted_times(n), strict=True):
        first, last = pick(txt.FIRST_NAMES), pick(txt.LAST_NAMES)
        mod = gen.later(t)
        out.append(
            {
                "id": cid,
                "companyID": pick(company_ids),
                "firstName": first,
                "lastName": last,
                "emailAddress": f"{first[0]}.{last}{cid % 1000}@example.com".lower(),
                "phone": f"+1-555-{rng.randrange(1000, 9999)}",
                "mobilePhone": None,
                "title": pick(txt.JOB_TITLES) or None,
                "isActive": 0 if rng.random() < 0.1 else 1,
                "primaryContact": rng.random() < 0.2,
                "createDate": created(t),
                "lastActivityDate": activity(gen.later(mod)),
                "lastModifiedDate": modified(mod),
                "userDefinedFields": udfs_of(
                    gen, {"Preferred Language": lambda r: r.choice(langs)}
                ),
            }
        )
    return out


def contracts(gen: Gen, company_ids: list[int], contact_ids: list[int]) -> list[Record]:
    """``config.contracts`` contracts. Their own RNG stream: a tenant with contracts has the
    same other records as one without."""
    n = gen.config.contracts
    if n == 0 or not company_ids:
        return []
    rng = random.Random(gen.config.seed * 7919 + 17)

    def pick(seq: list[int] | tuple[int, ...]) -> int:
        return seq[int(rng.random() * len(seq))]

    dates = gen.stamper("Contracts", "startDate")
    modified = gen.stamper("Contracts", "lastModifiedDateTime")
    starts = sorted(gen.anchor_ms - gen.span_ms + int(rng.random() * gen.span_ms) for _ in range(n))
    out: list[Record] = []
    contract_id, day = 29684500, 86_400_000
    for number, start in enumerate(starts, start=1):
        contract_id += 2 if rng.random() < 0.08 else 1
        company = pick(company_ids)
        kind = pick((1, 1, 3, 4, 6, 7, 7, 8))
        start_day = start // day * day
        out.append(
            {
                "id": contract_id,
                "companyID": company,
                "contactID": pick(contact_ids) if contact_ids and rng.random() < 0.5 else None,
                "contractName": f"{('Managed', 'Support', 'Block', 'Project')[kind % 4]} "
                f"agreement {number}",
                "contractNumber": f"CT{contract_id:08d}",
                "contractType": kind,
                "contractCategory": pick((1, 1, 2, 3)),
                "status": 1 if rng.random() < 0.85 else 0,
                "startDate": dates(start_day),
                "endDate": dates(start_day + 365 * day),
                "isDefaultContract": rng.random() < 0.1,
                "description": None,
                "estimatedRevenue": float(rng.randrange(1, 200) * 100),
                "setupFee": None,
                "serviceLevelAgreementID": None,
                "timeReportingRequiresStartAndStopTimes": 1,
                "lastModifiedDateTime": modified(gen.later(start)),
            }
        )
    return out


__all__ = ["companies", "contacts", "contracts", "resources"]
