"""Throwaway loopback API for the benchmarks until the sandbox lands on main. Not the sandbox."""

from __future__ import annotations

import asyncio
import json
import sys

ACCOUNT = {
    "healthy": True,
    "organization": {"name": "Bench", "status": "trial"},
    "credits": {"used": 20, "limit": 500, "remaining": 480, "percentUsed": 4.0, "resetsAt": None},
    "pixels": {"total": 2, "active": 1, "paused": 1},
    "intent": None,
}
state = {"requests": 0, "account": dict(ACCOUNT), "visitors": 0, "latency": 0.0}
PAGE = 50


def visitor(i: int) -> dict:
    return {
        "email": f"visitor{i}@example.com",
        "firstName": "Ada",
        "lastName": f"Visitor{i}",
        "company": {"name": f"Company {i % 997}", "domain": f"company{i % 997}.example", "size": "51-200"},
        "city": "Berlin",
        "country": "DE",
        "pagesViewed": ["/", "/pricing", f"/blog/post-{i % 50}"],
        "visitedAt": "2026-11-20T10:00:00Z",
    }


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
    if path in ("/_sandbox/account", "/_sandbox/visitors"):
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if path == "/_sandbox/account":
            state["account"] = {**ACCOUNT, **json.loads(body)}
        else:
            settings = json.loads(body)
            state["visitors"], state["latency"] = settings["total"], settings["latency_ms"] / 1000
        return await _send(send, 200, b"{}")
    state["requests"] += 1
    if path == "/v1/data/account" and scope["method"] == "GET":
        return await _send(send, 200, json.dumps({"data": state["account"]}).encode())
    if path == "/v1/data" and scope["method"] == "GET":
        query = dict(part.split(b"=", 1) for part in scope["query_string"].split(b"&") if b"=" in part)
        page = int(query.get(b"page", b"1"))
        if state["latency"]:
            await asyncio.sleep(state["latency"])
        first, total = (page - 1) * PAGE, state["visitors"]
        records = [visitor(i) for i in range(first, min(first + PAGE, total))]
        return await _send(send, 200, json.dumps({"data": records, "meta": {"total": total}}).encode())
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
