"""A scan's console lines, kept in PostgreSQL beyond the OUTPUT stream's retention."""

from __future__ import annotations

import asyncpg

from contracts.output import OutputLine, Stream

_COLS = ("scan_id", "seq", "time", "stream", "text")


async def insert_output(conn: asyncpg.Connection, lines: list[OutputLine]) -> None:
    """Keep console lines beyond the OUTPUT stream's retention; duplicates are ignored.

    A binary COPY first: it costs PostgreSQL and this process about half what the INSERT
    does per line (measured: ~8 -> ~5 us), and the console is ingest's busiest table. COPY
    cannot skip a duplicate, and one (a redelivery after a crash before the ack) fails the
    whole statement: that batch is written again with the INSERT that ignores them.
    """
    records = [(ln.scan_id, ln.seq, ln.time, ln.stream.value, ln.text) for ln in lines]
    try:
        if conn.is_in_transaction():  # a savepoint, so the fallback can still run
            async with conn.transaction():
                await conn.copy_records_to_table("scan_output", records=records, columns=_COLS)
        else:
            await conn.copy_records_to_table("scan_output", records=records, columns=_COLS)
    except asyncpg.UniqueViolationError:
        await _insert_output_again(conn, lines)


async def _insert_output_again(conn: asyncpg.Connection, lines: list[OutputLine]) -> None:
    await conn.execute(
        "INSERT INTO scan_output (scan_id, seq, time, stream, text)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[],"
        " $5::text[]) ON CONFLICT DO NOTHING",
        [ln.scan_id for ln in lines],
        [ln.seq for ln in lines],
        [ln.time for ln in lines],
        [ln.stream.value for ln in lines],
        [ln.text for ln in lines],
    )


async def list_output(
    pool: asyncpg.Pool, scan_id: str, after_seq: int, limit: int
) -> list[OutputLine]:
    """A scan's stored console lines with `seq > after_seq`, in order, at most `limit`."""
    rows = await pool.fetch(
        "SELECT seq, time, stream, text FROM scan_output"
        " WHERE scan_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        scan_id,
        after_seq,
        limit,
    )
    return [
        OutputLine(
            scan_id=scan_id,
            seq=r["seq"],
            time=r["time"],
            stream=Stream(r["stream"]),
            text=r["text"],
        )
        for r in rows
    ]
