"""Writing a scan's raw output into the `artifacts` object store with a job's narrow credentials.

nats-py's `ObjectStore.put` first reads the object's current meta through
`$JS.API.STREAM.MSG.GET.OBJ_<bucket>`, an API that can read any message of the bucket (every
other scan's raw output, every report), and picks a random chunk subject. A job may do
neither (`handlers.permissions.job`), so this writes the same layout — 128 KiB chunks on
`$O.<bucket>.C.<nuid>`, then the meta (name, size, chunk count, SHA-256 digest) on
`$O.<bucket>.M.<base64url(name)>` with a subject rollup — with a chunk subject named for the
scan. nats-py's `object_store(...).get(name)` reads it back and checks the digest.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from nats.js import JetStreamContext, api

from handlers.permissions import object_chunk_subject, object_meta_subject

CHUNK_SIZE = 128 * 1024


async def put(js: JetStreamContext, bucket: str, name: str, nuid: str, path: Path) -> None:
    """Store the file at `path` as object `name`; raise nats.errors.Error or OSError."""
    chunk_subject = object_chunk_subject(bucket, nuid)
    digest = hashlib.sha256()
    size = chunks = 0
    with path.open("rb") as fp:
        while chunk := await asyncio.to_thread(fp.read, CHUNK_SIZE):
            digest.update(chunk)
            await js.publish(chunk_subject, chunk)
            size += len(chunk)
            chunks += 1
    info = api.ObjectInfo(
        name=name,
        bucket=bucket,
        nuid=nuid,
        size=size,
        chunks=chunks,
        mtime=datetime.now(UTC).isoformat(),
        digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
        options=api.ObjectMetaOptions(max_chunk_size=CHUNK_SIZE),
    )
    await js.publish(
        object_meta_subject(bucket, name),
        json.dumps(info.as_dict()).encode(),
        headers={api.Header.ROLLUP: "sub"},
    )
