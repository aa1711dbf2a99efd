"""Generated resources, companies and contacts."""

from __future__ import annotations

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


__all__ = ["companies", "contacts", "resources"]
