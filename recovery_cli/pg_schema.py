"""The PostgreSQL backend's schema, versioned: ``recovery state migrate`` applies what is
missing, in order, each version in its own transaction under an advisory lock (two hosts
migrating at once apply each step once). Applying it again changes nothing."""

from __future__ import annotations

from typing import Any

MIGRATE_LOCK = "recovery-cli:migrate"
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE recovery_audit (
            seq bigserial PRIMARY KEY,
            id text NOT NULL UNIQUE,
            ts text NOT NULL,
            event text NOT NULL,
            component text,
            host text NOT NULL,
            outcome text,
            strategy text,
            attempt_id text,
            reason text,
            failure_type text,
            duration_s double precision,
            override boolean NOT NULL DEFAULT false,
            line text NOT NULL
        );
        CREATE INDEX recovery_audit_event_ts ON recovery_audit (event, ts);
        CREATE INDEX recovery_audit_attempt ON recovery_audit (attempt_id)
            WHERE attempt_id IS NOT NULL;
        CREATE INDEX recovery_audit_ts ON recovery_audit (ts);
        CREATE INDEX recovery_audit_component_event_ts
            ON recovery_audit (component, event, ts);
        CREATE TABLE recovery_chain (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            head_seq bigint NOT NULL,
            head_digest text NOT NULL
        );
        CREATE TABLE recovery_state (
            scope text PRIMARY KEY,
            doc jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE TABLE recovery_leases (
            key text PRIMARY KEY,
            holder text NOT NULL,
            host text NOT NULL,
            expires_at timestamptz NOT NULL
        );
        """,
    ),
)
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Any) -> int:
    """0 when the schema was never applied."""
    row = conn.execute("SELECT to_regclass('recovery_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM recovery_schema").fetchone()
    return int(found[0] or 0) if found else 0


def migrate(conn: Any) -> list[int]:
    """Apply every missing version; the versions applied now (empty: it was up to date)."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (MIGRATE_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS recovery_schema ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        have = current_version(conn)
        for version, statements in MIGRATIONS:
            if version <= have:
                continue
            conn.execute(statements)
            conn.execute("INSERT INTO recovery_schema (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied
