"""The simulated tenant's metadata: entity schemas, picklists, UDFs and webhook field ids."""

from tools.autotask_sim.catalog.data_entities import (
    DATA_SCHEMAS,
    DELETED_TICKET_ACTIVITY_LOGS,
    DELETED_TICKET_LOGS,
    LOG_SCHEMAS,
)
from tools.autotask_sim.catalog.system_entities import (
    ERROR_LOG_WEBHOOK_COLUMN,
    WEBHOOK_EVENT_ERROR_LOGS,
    WEBHOOK_FIELD_IDS,
    WebhookFieldIds,
)

__all__ = [
    "DATA_SCHEMAS",
    "DELETED_TICKET_ACTIVITY_LOGS",
    "DELETED_TICKET_LOGS",
    "ERROR_LOG_WEBHOOK_COLUMN",
    "LOG_SCHEMAS",
    "WEBHOOK_EVENT_ERROR_LOGS",
    "WEBHOOK_FIELD_IDS",
    "WebhookFieldIds",
]
