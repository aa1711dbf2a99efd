"""Secret rotation: the registration first, then Autotask, with an overlap in between.

1. In one transaction the registration gets a fresh random secret as current, the old one as
   previous (verifying until ``now + overlap``), and is marked *unconfirmed*. The gateway learns
   of it at once (NOTIFY) and from then on accepts callouts signed with either secret.
2. After a moment for the gateways to reload, ``PATCH {X}Webhooks {id, secretKey}`` gives
   Autotask the new secret; callouts already signed with the old one still verify.
3. The mark is cleared. The overlap ends by itself; a later pass forgets the previous secret.

A crash between 1 and 3 leaves the mark: the next pass sends the current secret again and
extends the overlap (Autotask may have kept signing with the previous one all along), so a
rotation never strands a webhook on a secret that has stopped verifying.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import SecretStr

from services.provisioner import store as provisioning
from shared import registrations
from shared.autotask import AutotaskClient, Priority
from shared.db import DbSession, Pool, session
from shared.errors import ConfigError
from shared.secrets import SecretBox


async def rotate(
    *,
    pool: Pool,
    client: AutotaskClient,
    box: SecretBox,
    root: str,
    webhook_id: int,
    registration_id: str,
    overlap: timedelta,
    propagation: timedelta,
    resume: bool,
) -> None:
    """Rotate (or, with ``resume``, finish rotating) one webhook's secret."""
    async with session(pool, "give a webhook a new secret") as db:
        if resume:
            current = await _current_secret(db, registration_id, box)
            await provisioning.extend_overlap(db, registration_id, overlap)
        else:
            current = registrations.new_webhook_secret()
            async with db.transaction():
                await registrations.begin_rotation(
                    db, registration_id, box, new_secret=current, overlap=overlap
                )
                await provisioning.mark_secret_unconfirmed(db, registration_id)
    await asyncio.sleep(propagation.total_seconds())
    await client.update(
        root,
        {"id": webhook_id, "secretKey": current.get_secret_value()},
        priority=Priority.INTERACTIVE,
    )
    async with session(pool, "confirm a webhook's new secret") as db:
        await provisioning.confirm_secret(db, registration_id)


async def _current_secret(db: DbSession, registration_id: str, box: SecretBox) -> SecretStr:
    found = await registrations.fetch_one(db, registration_id, box)
    if found is None:
        raise ConfigError(f"webhook registration {registration_id[:6]}… vanished during a rotation")
    return found.secret_current


__all__ = ["rotate"]
