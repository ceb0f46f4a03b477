"""Answers that are not what they claim, as real servers and gateways send them: a 200 whose
body is not JSON, a body cut off mid-way, one that trickles in for minutes, a proxy's HTML
error page, a completion with no choices or a null message, a content-filtered answer.
``SimSettings.bad_response`` picks one; ``bad_response_rate`` how often."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


async def spoil(
    good: web.Response, kind: str, request: web.Request, *, trickle_s: float = 600.0
) -> web.StreamResponse:
    """``good`` (a normal JSON completion) turned into the bad answer ``kind``; a
    ``trickle`` sends the body a few bytes at a time over ``trickle_s`` seconds."""
    headers = {k: v for k, v in good.headers.items() if k.lower().startswith("x-")}
    if kind == "not_json":
        return web.Response(text="upstream connect error", content_type="application/json")
    if kind == "html_error":
        return web.Response(
            status=502, text=_HTML_502, content_type="text/html", headers={"Server": "nginx"}
        )
    assert good.body is not None
    raw = bytes(good.body)  # type: ignore[arg-type]
    if kind == "trickle":
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "application/json", "Content-Length": str(len(raw))}
        )
        await response.prepare(request)
        pieces = max(1, len(raw) // 8)
        for i in range(pieces):
            await response.write(raw[i * 8 : (i + 1) * 8] if i < pieces - 1 else raw[i * 8 :])
            await asyncio.sleep(trickle_s / pieces)
        return response
    if kind == "truncated":
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "application/json", "Content-Length": str(len(raw))}
        )
        await response.prepare(request)
        await response.write(raw[: len(raw) // 2])
        if request.transport is not None:
            request.transport.close()
        return response
    payload = json.loads(raw)
    if kind == "empty_choices":
        payload["choices"] = []
    elif kind == "null_content":
        payload["choices"][0]["message"]["content"] = None
    elif kind == "content_filter":
        payload["choices"][0]["finish_reason"] = "content_filter"
        payload["choices"][0]["message"]["content"] = ""
    return web.json_response(payload, headers=headers)
