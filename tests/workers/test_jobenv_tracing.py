"""The job's share of tracing and logging in the env contract: the launch's `traceparent`,
the OTLP endpoint and the log format, set by both executors and checked by the job."""

from __future__ import annotations

import msgspec
import pytest

from contracts.jobs import LOG_FORMAT, OTLP_ENDPOINT, TRACEPARENT, job_environ
from handlers.launcher import manifest
from tests.handlers.test_k8s_manifest import BASE, env, start
from tests.kubeschema import validate
from tests.workers.test_jobenv import BASE as JOB_BASE
from tests.workers.test_jobenv import start_scan
from workers import jobenv
from workers.jobenv import JobEnvError

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ENDPOINT = "http://otel-collector.monitoring:4318"


def test_tracing_off_adds_nothing_to_the_job() -> None:
    environ = job_environ(start_scan(), "nats://n:4222", traceparent=PARENT, log_format="text")
    assert not {TRACEPARENT, OTLP_ENDPOINT, LOG_FORMAT} & set(environ)


def test_tracing_on_reaches_the_job_and_round_trips() -> None:
    environ = job_environ(
        start_scan(), "nats://n:4222", traceparent=PARENT, otlp_endpoint=ENDPOINT, log_format="json"
    )
    assert (environ[TRACEPARENT], environ[OTLP_ENDPOINT], environ[LOG_FORMAT]) == (
        PARENT,
        ENDPOINT,
        "json",
    )
    env_ = jobenv.parse(environ)
    assert (env_.traceparent, env_.otlp_endpoint, env_.log_format) == (PARENT, ENDPOINT, "json")
    assert jobenv.parse(jobenv.to_environ(env_)) == env_
    # The scanner is not jetscan's to trace: it sees neither the context nor the endpoint.
    assert not {TRACEPARENT, OTLP_ENDPOINT, LOG_FORMAT} & set(jobenv.scanner_environ(environ))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (TRACEPARENT, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"),
        (TRACEPARENT, "00-00000000000000000000000000000000-b7ad6b7169203331-01"),
        (TRACEPARENT, "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
        (OTLP_ENDPOINT, "otel-collector:4318"),
        (LOG_FORMAT, "xml"),
    ],
)
def test_a_bad_telemetry_variable_is_named(variable: str, value: str) -> None:
    with pytest.raises(JobEnvError) as err:
        jobenv.parse(JOB_BASE | {variable: value})
    assert err.value.variable == variable


def test_a_kubernetes_job_carries_the_launch_context() -> None:
    settings = msgspec.structs.replace(BASE, otlp_endpoint=ENDPOINT, log_format="json")
    job = manifest.build_job(start(ports="22"), settings, traceparent=PARENT)
    validate(job)
    e = env(job)
    assert (e[TRACEPARENT], e[OTLP_ENDPOINT], e[LOG_FORMAT]) == (PARENT, ENDPOINT, "json")
    plain = env(manifest.build_job(start(ports="22"), BASE, traceparent=PARENT))
    assert not {TRACEPARENT, OTLP_ENDPOINT, LOG_FORMAT} & set(plain)
