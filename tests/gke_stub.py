"""A small stateful GKE API (container v1, REST) on loopback: the node-pool and operation
endpoints katuna uses.

It records every request, keeps node pools and long-running operations, answers a duplicate
create with 409 ``ALREADY_EXISTS`` and a missing pool with 404 ``NOT_FOUND``, and can be told to
make operations take a few polls (``polls``), to fail the next operation with a message
(``fail_next``), or to refuse the next request with an error (``refuse_next``).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLUSTER = r"/v1/projects/([^/]+)/locations/([^/]+)/clusters/([^/]+)"
POOLS = re.compile(CLUSTER + r"/nodePools$")
POOL = re.compile(CLUSTER + r"/nodePools/([^/:]+)(:setAutoscaling)?$")
OPERATION = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/operations/([^/]+)$")
STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class GkeStub:
    def __init__(self) -> None:
        self.pools: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.polls = 0
        self.fail_next: str | None = None
        self.refuse_next: tuple[int, str] | tuple[int, str, str] | None = None
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = self.path.split("?")[0]
                with stub.lock:
                    stub.requests.append((method, path, body))
                    code, answer = stub.route(method, path, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str | None = None, suffix: str = "") -> list[tuple[str, str, dict | None]]:
        """Recorded requests, of one method and path ending, without the operation polls."""
        return [r for r in self.requests if (method is None or r[0] == method) and r[1].endswith(suffix)
                and "/operations/" not in r[1]]

    @staticmethod
    def error(code: int, message: str, status: str | None = None) -> tuple[int, dict]:
        return code, {"error": {"code": code, "message": message, "status": status or STATUS.get(code, "UNKNOWN")}}

    def _operation(self, project: str, location: str, kind: str, pool: str, on_done: str) -> tuple[int, dict]:
        number = f"operation-{len(self.operations) + 1}"
        error, self.fail_next = self.fail_next, None
        self.operations[number] = {"name": number, "operationType": kind, "status": "RUNNING", "pool": pool,
                                   "polls": self.polls, "error": error, "on_done": on_done,
                                   "selfLink": f"projects/{project}/locations/{location}/operations/{number}"}
        return 200, {"name": number, "operationType": kind, "status": "RUNNING"}

    def route(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        if self.refuse_next is not None and "/operations/" not in path:
            refusal, self.refuse_next = self.refuse_next, None
            return self.error(*refusal)
        if (match := POOLS.match(path)) and method == "POST":
            pool = body["nodePool"]
            if pool["name"] in self.pools:
                return self.error(409, f"Already exists: {path}/{pool['name']}.")
            self.pools[pool["name"]] = {**pool, "status": "PROVISIONING"}
            return self._operation(match[1], match[2], "CREATE_NODE_POOL", pool["name"], "RUNNING")
        if match := POOL.match(path):
            name = match[4]
            if name not in self.pools:
                return self.error(404, f"Not found: {path}.")
            if method == "GET":
                return 200, self.pools[name]
            if method == "DELETE":
                self.pools[name]["status"] = "STOPPING"
                return self._operation(match[1], match[2], "DELETE_NODE_POOL", name, "deleted")
            if match[5]:
                self.pools[name]["autoscaling"] = body["autoscaling"]
                self.pools[name]["status"] = "RECONCILING"
                return self._operation(match[1], match[2], "SET_NODE_POOL_SIZE", name, "RUNNING")
        if (match := OPERATION.match(path)) and method == "GET":
            return self._poll(match[3])
        return self.error(404, f"no route for {method} {path}")

    def _poll(self, number: str) -> tuple[int, dict]:
        operation = self.operations.get(number)
        if operation is None:
            return self.error(404, f"operation {number} not found")
        if operation["polls"] > 0:
            operation["polls"] -= 1
        elif operation["status"] != "DONE":
            operation["status"] = "DONE"
            pool = operation["pool"]
            if operation["error"]:
                if pool in self.pools:
                    self.pools[pool]["status"] = "ERROR"
            elif operation["on_done"] == "deleted":
                self.pools.pop(pool, None)
            elif pool in self.pools:
                self.pools[pool]["status"] = operation["on_done"]
        answer = {k: operation[k] for k in ("name", "operationType", "status", "selfLink")}
        if operation["status"] == "DONE" and operation["error"]:
            answer["error"] = {"code": 8, "message": operation["error"]}
        return 200, answer
