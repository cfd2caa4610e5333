"""JetStream's advisories for messages a consumer gave up on, as the PARKED stream keeps them."""

from __future__ import annotations

from datetime import datetime

import msgspec

TERMINATED = "io.nats.jetstream.advisory.v1.terminated"
MAX_DELIVER = "io.nats.jetstream.advisory.v1.max_deliver"


class Advisory(msgspec.Struct, frozen=True, kw_only=True):
    """`$JS.EVENT.ADVISORY.CONSUMER.<MSG_TERMINATED|MAX_DELIVERIES>.<stream>.<consumer>`.

    `reason` is what the handler gave when it terminated the message (`+TERM <reason>`);
    a message that ran out of deliveries has none.
    """

    type: str
    timestamp: datetime
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0
    reason: str = ""


advisory_decoder = msgspec.json.Decoder(Advisory)
