"""Throwaway loopback API for the benchmarks until the sandbox lands on main. Not the sandbox."""

from __future__ import annotations

import json
import sys

ACCOUNT = {
    "healthy": True,
    "organization": {"name": "Bench", "status": "trial"},
    "credits": {"used": 20, "limit": 500, "remaining": 480, "percentUsed": 4.0, "resetsAt": None},
    "pixels": {"total": 2, "active": 1, "paused": 1},
    "intent": None,
}
state = {"requests": 0, "account": dict(ACCOUNT)}
NOT_FOUND = json.dumps({"error": {"code": "HTTP_ERROR", "message": "Not found"}}).encode()


async def _send(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/_sandbox/stats":
        return await _send(send, 200, json.dumps({"requests": state["requests"]}).encode())
    if path == "/_sandbox/account":
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        state["account"] = {**ACCOUNT, **json.loads(body)}
        return await _send(send, 200, b"{}")
    state["requests"] += 1
    if path == "/v1/data/account" and scope["method"] == "GET":
        return await _send(send, 200, json.dumps({"data": state["account"]}).encode())
    return await _send(send, 404, NOT_FOUND)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )
