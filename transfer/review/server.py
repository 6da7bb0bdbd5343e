"""The review server: an aiohttp application on 127.0.0.1, every action a JSON endpoint
(docs/audit.md lists them), the page in static/ one client of them.

Safe by default: it listens on 127.0.0.1 only; every request must carry the random token of
the printed address (`?token=` or the X-Review-Token header: else 403) and a Host header naming
this server (else 403: a page on another site whose name was rebound to 127.0.0.1 sends its own
name); it serves only photos of the prepared dataset, looked up by id, never by joining a path
(anything else: 404); it writes data/exclusions.csv only, each change in one locked, atomic
rewrite (transfer.data.exclusions.update_exclusions); a request it cannot read is one 400 line.
"""

import asyncio
import functools
import hmac
import json
import os
import secrets
import sys
import webbrowser
from pathlib import Path

from aiohttp import web

from transfer.core.errors import PipelineError
from transfer.data.exclusions import DROP, KEEP, Decision, update_exclusions
from transfer.review.photos import file_jpeg, prepared_jpeg
from transfer.review.project import RERUN_COMMAND, Project
from transfer.review.queues import QUEUES, read_queue

TOKEN_HEADER = "X-Review-Token"
STATIC = Path(__file__).parent / "static"
ASSETS = {"review.js": "text/javascript", "review.css": "text/css", "icon.svg": "image/svg+xml"}
# The reasons the page offers for a drop; a script may give any one line.
REASONS = ("none of the classes", "ambiguous", "duplicate")
MOST_DECISIONS, LONGEST_REASON = 1000, 200
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


def effective_action(requested, current, shown_class):
    """What a decision writes. Keeping a photo and giving it the class it has now are one
    decision: `keep`, or, for a photo a person had moved to that class before, that move."""
    relabelled = current is not None and current.action == shown_class
    if requested in (KEEP, shown_class):
        return shown_class if relabelled else KEEP
    return requested


class Review:
    """The handlers, over one project."""

    def __init__(self, project, token):
        self.project = project
        # The page's own requests carry the token: it is in the address already.
        self.page = (STATIC / "index.html").read_text().replace("__TOKEN__", token)

    def known_photo(self, photo):
        if not isinstance(photo, str) or photo not in self.project.photos:
            raise NotFound(f"not a photo of this dataset: {str(photo)[:200]!r}")
        return photo

    def state(self):
        return {
            "classes": self.project.class_names,
            "reasons": list(REASONS),
            "waiting": self.project.waiting_for_rerun(),
            "command": RERUN_COMMAND,
        }

    async def index(self, request):
        return web.Response(text=self.page, content_type="text/html")

    async def asset(self, request):
        name = request.match_info["name"]
        if name not in ASSETS:
            raise NotFound(f"no asset {name[:100]!r}")
        return web.FileResponse(STATIC / name, headers={"Content-Type": ASSETS[name]})

    async def get_state(self, request):
        queues = []
        for queue in QUEUES.values():
            cards = read_queue(queue, self.project.root)
            queues.append(
                {
                    "name": queue.name,
                    "title": queue.title,
                    "stage": queue.stage,
                    "count": cards and len(cards),
                }
            )
        return web.json_response({**self.state(), "queues": queues})

    async def get_queue(self, request):
        name = request.match_info["name"]
        if name not in QUEUES:
            raise NotFound(f"no queue {name[:100]!r}: one of {', '.join(QUEUES)}")
        queue = QUEUES[name]
        cards = read_queue(queue, self.project.root)
        decisions = self.project.decisions()
        for card in cards or ():
            for photo in card["photos"]:
                decision = decisions.get(photo["path"])
                photo["decision"] = decision and {"action": decision.action, "reason": decision.reason}
        answer = {"name": name, "title": queue.title, "cards": cards or []}
        if cards is None:
            answer["missing"] = f"{queue.table} is not there yet: run `dvc repro {queue.stage}`"
        return web.json_response(answer)

    async def get_photo(self, request):
        if "path" not in request.query:
            raise BadRequest("give the photo as ?path=, its id in the audit's lists")
        photo = self.known_photo(request.query["path"])
        jpeg = await asyncio.get_running_loop().run_in_executor(None, self.jpeg, photo)
        if jpeg is None:
            raise NotFound(f"{photo} is no longer a readable image (changed since the pipeline ran)")
        return web.Response(body=jpeg, content_type="image/jpeg")

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Review lives as long as the server
    def jpeg(self, photo):
        file = self.project.file_of(photo)
        if file is not None:
            return file_jpeg(file)
        _, _, shard, row = self.project.photos[photo]
        return prepared_jpeg(self.project.root / "data/prepared" / shard, row)

    async def get_decisions(self, request):
        decisions = self.project.decisions()
        rows = [{"path": photo, "action": d.action, "reason": d.reason} for photo, d in decisions.items()]
        return web.json_response({**self.state(), "decisions": rows})

    def parse_decisions(self, body, key):
        try:
            wanted = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as problem:
            raise BadRequest(f"the body is not JSON: {problem}") from None
        items = wanted.get(key) if isinstance(wanted, dict) else None
        if not isinstance(items, list) or not 0 < len(items) <= MOST_DECISIONS:
            raise BadRequest(f'the body must be {{"{key}": [1 to {MOST_DECISIONS} objects]}}')
        changes = {}
        for item in items:
            if not isinstance(item, dict) or not {"path", "action"} <= set(item) <= {
                "path",
                "action",
                "reason",
            }:
                raise BadRequest('each decision is {"path": ..., "action": ..., "reason": ...}')
            photo, action, reason = (
                self.known_photo(item.get("path")),
                item.get("action"),
                item.get("reason", ""),
            )
            choices = (DROP, KEEP, *self.project.class_names)
            if action is not None and action not in choices:
                raise BadRequest(
                    f"action must be one of {', '.join(choices)} or null (no decision): {action!r}"[:300]
                )
            if (
                not isinstance(reason, str)
                or len(reason) > LONGEST_REASON
                or "\n" in reason
                or "\r" in reason
            ):
                raise BadRequest(f"reason must be one line of at most {LONGEST_REASON} characters")
            if photo in changes:
                raise BadRequest(f"{photo} is decided twice in one request")
            changes[photo] = (action, reason)
        return changes

    def decide(self, changes, undo=False):
        """Write the decisions (the folder lock and the rewrite block: run in a thread). undo:
        write each line as given (what an earlier answer's `previous` held)."""
        current = self.project.decisions()
        written = {}
        for photo, (action, reason) in changes.items():
            if action is None:
                written[photo] = None
                continue
            if not undo:
                shown = self.project.class_names[self.project.photos[photo][0]]
                action = effective_action(action, current.get(photo), shown)
            written[photo] = Decision(action, reason, self.project.content_hash(photo))
        previous = update_exclusions(written, self.project.exclusions)
        return written, previous

    async def post_decisions(self, request):
        return await self.write(self.parse_decisions(await request.read(), "decisions"), undo=False)

    async def post_undo(self, request):
        return await self.write(self.parse_decisions(await request.read(), "previous"), undo=True)

    async def write(self, changes, undo):
        loop = asyncio.get_running_loop()
        written, previous = await loop.run_in_executor(None, self.decide, changes, undo)

        def rows(decisions):
            return [
                {"path": photo, "action": d and d.action, "reason": d.reason if d else ""}
                for photo, d in decisions.items()
            ]

        return web.json_response({**self.state(), "written": rows(written), "previous": rows(previous)})


def create_app(project, token):
    review = Review(project, token)
    app = web.Application(middlewares=[guard(token)], client_max_size=2**20)
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/", review.index)
    app.router.add_get("/assets/{name}", review.asset)
    app.router.add_get("/api/state", review.get_state)
    app.router.add_get("/api/queues/{name}", review.get_queue)
    app.router.add_get("/api/photo", review.get_photo)
    app.router.add_get("/api/decisions", review.get_decisions)
    app.router.add_post("/api/decisions", review.post_decisions)
    app.router.add_post("/api/undo", review.post_undo)
    return app


def can_open_a_browser():
    """A graphical browser to open: on a desktop. Not on a server or in CI, where Python's
    webbrowser would pick a text browser and take over the terminal."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


async def serve(port, open_browser):
    project = Project()
    token = secrets.token_urlsafe(24)
    runner = web.AppRunner(create_app(project, token), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as problem:
            raise PipelineError(f"cannot listen on 127.0.0.1:{port}: {problem.strerror}") from None
        address = f"http://127.0.0.1:{runner.addresses[0][1]}/?token={token}"
        print(f"transfer review: {address}", flush=True)
        print("(Ctrl-C stops it; every decision is already written to data/exclusions.csv)", file=sys.stderr)
        if open_browser and can_open_a_browser():
            webbrowser.open(address)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
