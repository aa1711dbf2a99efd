"""The tenant's data: field schemas, tables, write validation, business rules, webhooks."""
