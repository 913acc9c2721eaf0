"""The gRPC server interceptor that enforces ``access`` on every call of a server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from modelverse.security.access import Authenticator, Denial, needed_role
from modelverse.security.keys import Role

log = logging.getLogger("modelverse.auth")

STATUS_OF_DENIAL = {
    Denial.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Denial.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that only refuses the call."""

    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    serializers = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, **serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    return grpc.stream_stream_rpc_method_handler(refuse, **serializers)


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        needed = needed_role(details.method)
        if needed is None:
            return continuation(details)
        authorization = next((v for k, v in details.invocation_metadata or () if k == "authorization"), None)
        decision = self.authenticator.decide(authorization if isinstance(authorization, str) else None, needed)
        handler = continuation(details)
        if decision.allowed or handler is None:  # None: an unknown method, UNIMPLEMENTED as usual
            if decision.allowed and needed is Role.ADMIN:  # an audit trail of who changed what
                log.info("admin call", extra={"method": details.method, "key_id": decision.key_id})
            return handler
        assert decision.denial is not None
        log.info("call refused", extra={"method": details.method, "denial": decision.denial.value,
                                        "key_id": decision.key_id})
        return _refusing(handler, STATUS_OF_DENIAL[decision.denial], decision.message)
