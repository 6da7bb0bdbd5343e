"""The review server: an aiohttp application on 127.0.0.1, every action a JSON endpoint
(docs/audit.md lists them), the page in static/ one client of them.

Safe by default: it listens on 127.0.0.1 only; guard checks the token and the Host header of
every request; it serves only photos of the prepared dataset, looked up by id, never by
joining a path (anything else: 404); it writes data/exclusions.csv only, each change in one
locked, atomic rewrite (transfer.data.exclusions.update_exclusions).
"""

import asyncio
import functools
import os
import secrets
import sys
import webbrowser
from pathlib import Path

from aiohttp import web

from transfer.core.artifacts import PREPARED
from transfer.core.errors import PipelineError
from transfer.review.decisions import REASONS, decide, known_photo, parse_decisions
from transfer.review.guard import BadRequest, NotFound, add_security_headers, guard
from transfer.review.photos import file_jpeg, prepared_jpeg
from transfer.review.project import RERUN_COMMAND, Project
from transfer.review.queues import QUEUES, read_queue

STATIC = Path(__file__).parent / "static"
ASSETS = {"review.js": "text/javascript", "review.css": "text/css", "icon.svg": "image/svg+xml"}


class Review:
    """The handlers, over one project."""

    def __init__(self, project, token):
        self.project = project
        # The page's own requests carry the token: it is in the address already.
        self.page = (STATIC / "index.html").read_text().replace("__TOKEN__", token)

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
                    "count": None if cards is None else len(cards),
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
        photo = known_photo(self.project, request.query["path"])
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
        return prepared_jpeg(self.project.root / PREPARED / shard, row)

    async def get_decisions(self, request):
        decisions = self.project.decisions()
        rows = [{"path": photo, "action": d.action, "reason": d.reason} for photo, d in decisions.items()]
        return web.json_response({**self.state(), "decisions": rows})

    async def post_decisions(self, request):
        return await self.write(parse_decisions(self.project, await request.read(), "decisions"), undo=False)

    async def post_undo(self, request):
        return await self.write(parse_decisions(self.project, await request.read(), "previous"), undo=True)

    async def write(self, changes, undo):
        loop = asyncio.get_running_loop()
        written, previous = await loop.run_in_executor(None, decide, self.project, changes, undo)

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
            reason = os.strerror(problem.errno) if problem.errno else problem
            raise PipelineError(f"cannot listen on 127.0.0.1:{port}: {reason}") from None
        address = f"http://127.0.0.1:{runner.addresses[0][1]}/?token={token}"
        print(f"transfer review: {address}", flush=True)
        print("(Ctrl-C stops it; every decision is already written to data/exclusions.csv)", file=sys.stderr)
        if open_browser and can_open_a_browser():
            webbrowser.open(address)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
