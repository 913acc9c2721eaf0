"""OpenTelemetry tracing of the serving processes, on only when an exporter is configured.

The standard variables choose it: ``OTEL_TRACES_EXPORTER=otlp`` (with ``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, and the exporter's other OTEL_EXPORTER_OTLP_* options)
or ``console``; ``OTEL_SERVICE_NAME`` names the process. Unlike the SDK's autoconfiguration, no
exporter is the default: a process with none of these set traces nothing and needs no collector.

A traced search is one trace: the gateway's server span (from opentelemetry-instrumentation-grpc's
server interceptor), one client span per shard attempt (``fanout``), and each shard's server span,
joined by the W3C ``traceparent`` metadata the attempts carry.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

log = logging.getLogger("modelverse.tracing")
INSTRUMENTATION = "modelverse.serving"


class Tracing:
    """A process's tracer provider (None: tracing off) and what the servers and fan-out need of it."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.NoOpTracer()

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def server_interceptors(self) -> list[grpc.ServerInterceptor]:
        if self.provider is None:
            return []
        from opentelemetry.instrumentation.grpc import filters, server_interceptor

        return [server_interceptor(tracer_provider=self.provider, filter_=filters.negate(filters.health_check()))]

    def start_client_span(self, name: str, attributes: dict[str, Any]) -> Span:
        """A client span under the current context (the caller's server span); end it yourself."""
        return self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    @staticmethod
    def metadata_for(span: Span) -> tuple[tuple[str, str], ...]:
        """The ``traceparent`` (and ``tracestate``) metadata that make ``span`` the parent of the callee's."""
        if not span.get_span_context().is_valid:
            return ()
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return tuple(carrier.items())

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


OFF = Tracing()


def from_environment(service_name: str) -> Tracing:
    """The exporter the OTEL_* variables name, or tracing off when they name none."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter_name and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        exporter_name = "otlp"
    if exporter_name in ("", "none"):
        return OFF
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, TLS: from OTEL_EXPORTER_OTLP_*
    elif exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        raise SystemExit(f"OTEL_TRACES_EXPORTER={exporter_name!r}: this build knows otlp, console and none")
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"modelverse-{service_name}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing on", extra={"exporter": exporter_name})
    return Tracing(provider)
