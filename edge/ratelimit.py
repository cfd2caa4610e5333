"""Per-token rate limits on the RPCs that start work (StartScan, GenerateReport).

A token bucket per (token, method): `limit` calls per `period`, refilled evenly, with room
for a burst of `limit`. A call over the limit is RESOURCE_EXHAUSTED before it reaches the
bus, with when to retry in the message and in a `retry-after` trailer (whole seconds, as
HTTP's header; grpclib reserves `grpc-*` keys, so gRPC's own `grpc-retry-pushback-ms` is not
an option). The buckets live in the edge process: with several edge
replicas a token gets the limit at each, which still stops one token from flooding the bus.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from grpclib import GRPCError
from grpclib.const import Status
from grpclib.events import RecvRequest, SendTrailingMetadata

from contracts.settings import Rate
from edge import auth

RETRY_AFTER = "retry-after"
# Buckets kept at most; the least recently used go first (a full bucket is an unused one).
MAX_BUCKETS = 100_000

_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "retry_after", default=None
)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """The buckets of the limited methods, by method name without service (`StartScan`)."""

    def __init__(
        self,
        rates: Mapping[str, Rate],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._rates = {m: r for m, r in rates.items() if r.limit > 0}
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def take(self, key: str, method: str) -> float:
        """0 when the call may go ahead (and is counted); else seconds until it may."""
        rate = self._rates.get(method)
        if rate is None:
            return 0.0
        now = self._clock()
        per_second = rate.limit / rate.period
        bucket = self._buckets.pop((key, method), None) or _Bucket(float(rate.limit), now)
        bucket.tokens = min(float(rate.limit), bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        self._buckets[(key, method)] = bucket
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / per_second

    def refusal(self, method: str, wait: float) -> GRPCError:
        rate = self._rates[method]
        return GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"rate limit: at most {rate} {method} calls per token; retry after {wait:.1f}s",
        )

    async def on_request(self, event: RecvRequest) -> None:
        """grpclib RecvRequest hook, after authentication (it needs the principal)."""
        method = event.method_name.rsplit("/", 1)[-1]
        if method not in self._rates:
            return
        wait = self.take(auth.current.get().key, method)
        if wait:
            _retry_after.set(wait)
            raise self.refusal(method, wait)

    async def on_trailers(self, event: SendTrailingMetadata) -> None:
        wait = _retry_after.get()
        if wait is not None and event.status is Status.RESOURCE_EXHAUSTED:
            event.metadata[RETRY_AFTER] = str(math.ceil(wait))
