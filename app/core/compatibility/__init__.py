"""Would a new version of a contract break the readers or the writers of the old one?

Contracts are JSON Schemas (integration events) and OpenAPI documents (each module's internal
API). Which changes break depends on the direction the data flows:

- OUTPUT (responses): a reader built on the old schema must accept every new value: no field
  removed, none that was always there now optional, no new kind of value (a widened type, a new
  enum value, a looser bound), no new field where the old schema refused unknown ones.
- INPUT (request bodies, parameters): every old request must still be accepted: no field
  removed, none newly required, no narrowed type, no enum value dropped, no tighter bound.
- BOTH (events): old consumers read new events, and new code reads old events still held in
  outboxes and streams.

Libraries checked first (docs/adr/0008-contract-snapshots.md): jsoncompat answers yes or no
without saying why and needs Python 3.12 for OpenAPI documents; api-schema-diff compares type
names only (a nullable field made required passes) and ignores direction.

`schemas` compares two JSON Schemas in a direction; `openapi` compares two OpenAPI documents
operation by operation, with `schemas` for each parameter and body.
"""
