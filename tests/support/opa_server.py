"""A local stand-in for an OPA server: the REST API subset the service uses, backed by the real
OPA engine (`opa_bindings`), so parse errors, compile errors and semantics are OPA's own.

    POST /v1/data/{path}   {"input": ...} -> {"result": ...}, or {} when undefined
    GET  /v1/data/{path}   -> {"result": ...} or {}
    PUT  /v1/data/{path}   JSON document -> 204;  DELETE /v1/data/{path} -> 204 or 404
    GET  /v1/policies[/]   -> {"result": [{"id", "raw", "ast": {"package": ...}}]}
    GET/PUT/DELETE /v1/policies/{id}   (PUT: Rego text; 400 with OPA-style errors if it fails)
    GET  /health           -> 200 {}

Every change builds a fresh engine from all modules and data and swaps it in only if it compiles,
as OPA does.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

_ERROR_LINE = re.compile(r"(?P<file>[^\s:]+):(?P<row>\d+): (?P<code>rego_\w+): (?P<message>.*)")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


def compile_errors(exc: OpaError) -> dict[str, Any]:
    """OPA's 400 body for modules that do not parse or compile."""
    errors = [
        {
            "code": m["code"],
            "message": m["message"],
            "location": {"file": m["file"], "row": int(m["row"]), "col": 1},
        }
        for m in _ERROR_LINE.finditer(exc.message)
    ]
    if not errors:
        errors = [{"code": exc.code, "message": exc.message}]
    return {
        "code": "invalid_parameter",
        "message": "error(s) occurred while compiling module(s)",
        "errors": errors,
    }


class _Store:
    """Modules and data; the engine is rebuilt on every change and swapped if it compiles."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.engine = self._build(self.policies, self.data)

    @staticmethod
    def _build(policies: dict[str, str], data: dict[str, Any]) -> OpaEngine:
        engine = OpaEngine()
        try:
            for policy_id, source in sorted(policies.items()):
                engine.add_policy(policy_id, source)
            engine.add_data(data)
            engine.eval_query("true")  # compile everything now, as OPA does on PUT
        except OpaError:
            engine.close()
            raise
        return engine

    def change(self, policies: dict[str, str], data: dict[str, Any]) -> None:
        """Raises OpaError (nothing changes) if the new state does not compile."""
        engine = self._build(policies, data)
        self.policies, self.data, self.engine = policies, data, engine


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up is fine
            super().handle_error(request, client_address)


class LocalOpaServer:
    """`with LocalOpaServer() as server:` ... `server.url`. `delay` slows every data request."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = _Store()
        self.delay = 0.0
        self.requests: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _HTTPServer((host, port), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _set_path(doc: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    if not keys:
        return value if isinstance(value, dict) else {}
    out = dict(doc)
    child = out.get(keys[0])
    out[keys[0]] = _set_path(child if isinstance(child, dict) else {}, keys[1:], value)
    return out


def _delete_path(doc: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    """A copy without keys, or None if there is nothing at keys."""
    if len(keys) == 1:
        if keys[0] not in doc:
            return None
        return {k: v for k, v in doc.items() if k != keys[0]}
    child = doc.get(keys[0])
    if not isinstance(child, dict) or (new_child := _delete_path(child, keys[1:])) is None:
        return None
    return {**doc, keys[0]: new_child}


class _Handler(BaseHTTPRequestHandler):
    server_state: LocalOpaServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, method: str) -> None:
        state = self.server_state
        path = self.path.split("?", 1)[0]
        state.requests.append((method, path))
        if path == "/health" and method == "GET":
            return self._send(200, {})
        if path in {"/v1/policies", "/v1/policies/"} and method == "GET":
            return self._send(
                200, {"result": [self._policy(i) for i in sorted(state.store.policies)]}
            )
        if path.startswith("/v1/policies/"):
            return self._policies(method, path.removeprefix("/v1/policies/"))
        if path == "/v1/data" or path.startswith("/v1/data/"):
            time.sleep(state.delay)
            keys = [k for k in path.removeprefix("/v1/data").split("/") if k]
            return self._data(method, keys)
        return self._send(404, {"code": "resource_not_found", "message": f"{method} {path}"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # --- policies ----------------------------------------------------------------------------

    def _policy(self, policy_id: str) -> dict[str, Any]:
        raw = self.server_state.store.policies[policy_id]
        package = _PACKAGE.search(raw)
        parts = package.group(1).split(".") if package else []
        path = [{"type": "var", "value": "data"}] + [{"type": "string", "value": p} for p in parts]
        return {"id": policy_id, "raw": raw, "ast": {"package": {"path": path}, "rules": []}}

    def _policies(self, method: str, policy_id: str) -> None:
        store = self.server_state.store
        with store.lock:
            if method == "GET":
                if policy_id not in store.policies:
                    return self._not_found(f"policy id {policy_id!r}")
                return self._send(200, {"result": self._policy(policy_id)})
            if method == "PUT":
                policies = {**store.policies, policy_id: self._body().decode()}
            elif method == "DELETE":
                if policy_id not in store.policies:
                    return self._not_found(f"policy id {policy_id!r}")
                policies = {k: v for k, v in store.policies.items() if k != policy_id}
            else:
                return self._send(405, {"code": "method_not_allowed", "message": method})
            try:
                store.change(policies, store.data)
            except OpaError as exc:
                return self._send(400, compile_errors(exc))
        return self._send(200, {})

    def _not_found(self, what: str) -> None:
        self._send(
            404, {"code": "resource_not_found", "message": f"storage_not_found_error: {what}"}
        )

    # --- data --------------------------------------------------------------------------------

    def _data(self, method: str, keys: list[str]) -> None:
        store = self.server_state.store
        if method in {"GET", "POST"}:
            return self._query(keys)
        with store.lock:
            if method == "PUT":
                try:
                    value = json.loads(self._body() or b"null")
                except ValueError as exc:
                    return self._send(400, {"code": "invalid_parameter", "message": str(exc)})
                data = _set_path(store.data, keys, value)
            elif method == "DELETE" and keys:
                found = _delete_path(store.data, keys)
                if found is None:
                    return self._not_found(f"/{'/'.join(keys)}")
                data = found
            else:
                return self._send(405, {"code": "method_not_allowed", "message": method})
            try:
                store.change(store.policies, data)
            except OpaError as exc:
                return self._send(400, compile_errors(exc))
        return self._send(204)

    def _query(self, keys: list[str]) -> None:
        input_doc = None
        if self.command == "POST":
            try:
                body = json.loads(self._body() or b"{}")
            except ValueError:
                return self._send(
                    400, {"code": "invalid_parameter", "message": "body contains malformed JSON"}
                )
            if not isinstance(body, dict):
                return self._send(400, {"code": "invalid_parameter", "message": "expected object"})
            input_doc = body.get("input")
        engine = self.server_state.store.engine
        try:
            result = engine.eval_document(".".join(keys), input_doc)
        except OpaUndefinedError:
            return self._send(200, {})
        except OpaError as exc:
            return self._send(500, {"code": "internal_error", "message": exc.message})
        return self._send(200, {"result": result})
