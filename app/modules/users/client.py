"""users over HTTP, for a process that does not host users: `UsersFacade` and the audit trail
(app/core/peers.py has the timeouts, retries, breaker and headers)."""

from __future__ import annotations

from uuid import UUID

from pydantic import TypeAdapter

from app.core.audit import AuditEntry
from app.core.jobs import JobQueue, JobRequest
from app.core.logging import get_logger
from app.core.peers import Peer, PeerUnavailableError
from app.modules.users.contracts import Contact
from app.modules.users.schemas import AuditEntryIn, EmailVerificationStatus
from app.modules.users.service import RECORD_AUDIT_ENTRY_JOB

_CONTACT = TypeAdapter(Contact | None)
_VERIFICATION = TypeAdapter(EmailVerificationStatus)
_log = get_logger("keystone.users.audit")


class UsersClient:
    def __init__(self, peer: Peer) -> None:
        self._peer = peer

    async def contact(self, user_id: UUID) -> Contact | None:
        return await self._peer.get(f"/internal/users/contacts/{user_id}", into=_CONTACT)

    async def email_verified(self, user_id: UUID) -> bool:
        answer = await self._peer.get(
            f"/internal/users/email-verifications/{user_id}", into=_VERIFICATION
        )
        return answer.verified


class AuditTrailClient:
    """Records in users' audit table over HTTP. While users cannot be reached the entry goes to
    users' own job queue instead (Redis), for its worker to store when it can: an admin action
    already done is not refused for want of its audit line, nor is the line lost."""

    def __init__(self, peer: Peer, jobs: JobQueue) -> None:
        self._peer = peer
        self._jobs = jobs

    async def record(self, entry: AuditEntry) -> None:
        body = AuditEntryIn.of(entry).model_dump(mode="json")
        try:
            await self._peer.put(f"/internal/users/audit-entries/{entry.entry_id}", body=body)
        except PeerUnavailableError as unavailable:
            await self._queue(entry, body, unavailable)

    async def _queue(
        self, entry: AuditEntry, body: dict[str, object], unavailable: PeerUnavailableError
    ) -> None:
        request = JobRequest(
            RECORD_AUDIT_ENTRY_JOB, (str(entry.entry_id), body), job_id=f"audit:{entry.entry_id}"
        )
        try:
            await self._jobs.enqueue(request)
        except Exception as exc:
            # Neither users nor its queue: the entry survives in this log line only.
            _log.error(
                "audit entry not stored", entry=body, entry_id=str(entry.entry_id), error=repr(exc)
            )
            raise unavailable from exc
        _log.warning(
            "audit entry queued for users", entry_id=str(entry.entry_id), reason=unavailable.reason
        )
