"""What keeps the review server to the person at this machine: every request must carry the
random token of the printed address (`?token=` or the X-Review-Token header: else 403) and a
Host header naming this server (else 403: a page on another site whose name was rebound to
127.0.0.1 sends its own name); what a handler cannot read or find is one line (400, 404); and
every answer carries headers that keep the page to its own origin.
"""

import hmac

from aiohttp import web

TOKEN_HEADER = "X-Review-Token"
SECURITY_HEADERS = {
    # Only its own scripts, styles and photos; never framed by another page; the address (and
    # its token) never sent on as a referrer; nothing kept in a shared cache.
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def error(status, message):
    return web.Response(status=status, text=f"error: {message}\n")


class BadRequest(Exception):
    """A request the server cannot read: one 400 line saying why."""


class NotFound(Exception):
    """A queue or photo this server does not have: one 404 line."""


def guard(token):
    @web.middleware
    async def check(request, handler):
        port = request.transport.get_extra_info("sockname")[1]
        if request.headers.get("Host") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return error(403, f"the Host header must be 127.0.0.1:{port} (this server)")
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error(403, "a missing or wrong token: open the address `transfer review` printed")
        try:
            return await handler(request)
        except BadRequest as problem:
            return error(400, problem)
        except NotFound as problem:
            return error(404, problem)

    return check


async def add_security_headers(request, response):
    response.headers.update(SECURITY_HEADERS)
