"""Helpers of the serving processes' server interceptors (request ids, admission control).

A sync gRPC server runs ``intercept_service`` on its polling thread, before the call reaches a
worker thread: what must happen on the worker thread, around the handler (a context variable,
a concurrency slot), is done by returning a handler whose behaviour wraps the original one.
"""

from __future__ import annotations

from typing import Any, Callable

import grpc

Behaviour = Callable[[Any, grpc.ServicerContext], Any]

# Never held back nor counted as the service's work: an orchestrator must be able to ask an
# overloaded process whether it lives, and reflection is a client's tooling.
EXEMPT_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def method_name(full_method: str) -> str:
    """``/pkg.Service/Method`` -> ``Method``."""
    return full_method.rsplit("/", 1)[-1]


def is_exempt(full_method: str) -> bool:
    return full_method.startswith(EXEMPT_SERVICES)


def wrap_unary(
    handler: grpc.RpcMethodHandler | None, wrapper: Callable[[Behaviour], Behaviour]
) -> grpc.RpcMethodHandler | None:
    """``handler`` with its unary-unary behaviour wrapped; other kinds are returned unchanged
    (the services answer unary calls only; reflection streams and is exempt)."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class UnaryCallInterceptor(grpc.ServerInterceptor):
    """Base of the serving processes' interceptors that act around each call on its worker
    thread: every unary call of the services (health and reflection are exempt) has its behaviour
    wrapped by ``around``."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if is_exempt(details.method):
            return handler
        rpc = method_name(details.method)
        return wrap_unary(handler, lambda behaviour: self.around(rpc, behaviour))

    def around(self, rpc: str, behaviour: Behaviour) -> Behaviour:
        """``behaviour`` (the handler of the call ``rpc``) with this interceptor's work around it."""
        raise NotImplementedError
