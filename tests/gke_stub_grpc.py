"""The loopback GKE API (:class:`gke_stub.GkeStub`) over gRPC, the transport katuna uses in
production: the same pools, operations and refusals as over REST.

Each call is turned into the REST request the client's REST transport would send for it (the
path from the name or parent, the rest of the request as its JSON body) and answered by the
stand-in; a refusal becomes the gRPC status of its canonical code, with its ``ErrorInfo``
reason as a status detail, as Google's gRPC endpoints send them.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from gke_stub import GkeStub
from google.cloud import container_v1
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICE = "google.container.v1.ClusterManager"
CALLS: dict[str, tuple[type, type, str, str, str]] = {
    "CreateNodePool": (container_v1.CreateNodePoolRequest, container_v1.Operation, "POST", "parent", "/nodePools"),
    "GetNodePool": (container_v1.GetNodePoolRequest, container_v1.NodePool, "GET", "name", ""),
    "ListNodePools": (container_v1.ListNodePoolsRequest, container_v1.ListNodePoolsResponse, "GET", "parent",
                      "/nodePools"),
    "DeleteNodePool": (container_v1.DeleteNodePoolRequest, container_v1.Operation, "DELETE", "name", ""),
    "SetNodePoolAutoscaling": (container_v1.SetNodePoolAutoscalingRequest, container_v1.Operation, "POST", "name",
                               ":setAutoscaling"),
    "SetNodePoolSize": (container_v1.SetNodePoolSizeRequest, container_v1.Operation, "POST", "name", ":setSize"),
    "GetOperation": (container_v1.GetOperationRequest, container_v1.Operation, "GET", "name", ""),
}
"""gRPC method: request and response types, and the REST method, path field and path ending."""


class GrpcGke:
    """A gRPC server on loopback in front of ``stub``; ``address`` is its ``host:port``. Its
    close ends the threads that answered and closes the channels of the clients it made: only
    stopped, the server's threads waited until the garbage collector found it, in a later test."""

    def __init__(self, stub: GkeStub) -> None:
        self.stub = stub
        self._pool = futures.ThreadPoolExecutor(max_workers=4)
        self._channels: list[grpc.Channel] = []
        self.server = grpc.server(self._pool)
        handlers = {name: grpc.unary_unary_rpc_method_handler(self._handler(name), request_deserializer=request.deserialize,
                                                              response_serializer=response.serialize)
                    for name, (request, response, *_) in CALLS.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self.server.stop(grace=None).wait()
        self._pool.shutdown(wait=True)

    def client(self) -> container_v1.ClusterManagerClient:
        """The real client on its default (gRPC) transport, over a plain channel to this server."""
        channel = grpc.insecure_channel(self.address)
        self._channels.append(channel)
        transport = container_v1.services.cluster_manager.transports.ClusterManagerGrpcTransport(channel=channel)
        return container_v1.ClusterManagerClient(transport=transport)

    def _handler(self, name: str):
        request_type, response_type, method, field, suffix = CALLS[name]

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            body = json_format.MessageToDict(request_type.pb(request), use_integers_for_enums=True)
            path = f"/v1/{body.pop(field)}{suffix}"
            authorization = dict(context.invocation_metadata()).get("authorization")
            code, answer = self.stub.answer(method, path, body if method == "POST" else None, authorization)
            if code != 200:
                context.abort_with_status(rpc_status.to_status(_status(answer["error"])))
            return response_type(json_format.ParseDict(answer, response_type.pb()(), ignore_unknown_fields=True))

        return handle


def _status(error: dict[str, Any]) -> status_pb2.Status:
    """The gRPC status of a JSON error: its canonical code, message and details (each the
    ``google.rpc`` message its ``@type`` names, its JSON form parsed as gRPC carries it)."""
    details = []
    for detail in error.get("details", []):
        fields = {key: value for key, value in detail.items() if key != "@type"}
        kind = getattr(error_details_pb2, detail["@type"].rpartition(".")[2])
        packed = any_pb2.Any()
        packed.Pack(json_format.ParseDict(fields, kind()))
        details.append(packed)
    return status_pb2.Status(code=grpc.StatusCode[error["status"]].value[0], message=error["message"],
                             details=details)
