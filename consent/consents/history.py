"""History entries of consent and preference events, with their network proof decrypted."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from consent.consents.schemas import NetworkProof
from consent.crypto.datakeys import DataKeys
from consent.db.database import Conn

__all__ = ["HistoryReader"]

_HIDDEN = frozenset({"evidence_enc", "seq"})


class HistoryReader:
    """Turns one page of history rows into the fields of their event structs. The network
    evidence kept with an event (`evidence_enc`, sealed under `context`) is decrypted under its
    subject's data key, each key fetched once per page."""

    def __init__(self, conn: Conn, datakeys: DataKeys, tenant_id: UUID, context: bytes) -> None:
        self.conn = conn
        self.datakeys = datakeys
        self.tenant_id = tenant_id
        self.context = context
        self._deks: dict[UUID, bytes] = {}

    async def fields(self, row: Any) -> dict[str, Any]:
        fields = {k: v for k, v in dict(row).items() if k not in _HIDDEN}
        if row["evidence_enc"] is not None:
            subject_id: UUID = row["subject_id"]
            dek = self._deks.get(subject_id)
            if dek is None:
                dek = await self.datakeys.get(self.conn, self.tenant_id, subject_id)
                self._deks[subject_id] = dek
            plain = DataKeys.decrypt(
                dek, self.tenant_id, subject_id, row["evidence_enc"], self.context
            )
            fields["network"] = msgspec.json.decode(plain, type=NetworkProof)
        return fields
