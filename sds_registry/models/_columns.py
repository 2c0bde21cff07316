"""Column helpers shared by the versioned aggregates (version, created/updated timestamps, lenient flags)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from sds_registry.db import utcnow


class Versioned:
    """Optimistic concurrency: every UPDATE checks and bumps ``version`` (ETag W/"<version>")."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    #: Space-separated rule codes a lenient import let through (NULL when the record conforms).
    flags: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, object]:  # noqa: N805
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]
