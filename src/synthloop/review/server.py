"""`synthloop review RUN`: the review web app, standard library only, every asset served from the package.

Bound to 127.0.0.1 by default. Every API call carries the session token in a header (a page on another
site cannot set one, so it cannot post decisions through the reviewer's browser), and the Host header
must name this server (no DNS rebinding). Bound to any other address, the page itself needs the token
too: the URL printed at start carries it.

A decision is appended to the run's decision log and fsynced before the answer goes back, so what the
page shows as saved survives a kill -9 of the server."""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from synthloop.review.decisions import (
    REJECT_REASONS,
    Decision,
    DecisionFold,
    ReviewError,
    changed_fields,
    new_decision,
)
from synthloop.review.rounds import ReviewRound, finished_rounds

MAX_BODY = 4 * 1024 * 1024
MAX_BULK = 10_000
STATIC = {"/static/review.js": "text/javascript", "/static/review.css": "text/css"}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ReviewApp:
    """What the handlers share: the round under review, the token, and a lock around the log's readers."""

    def __init__(self, review: ReviewRound, token: str, reviewer: str, host: str):
        self.review, self.token, self.reviewer, self.host = review, token, reviewer, host
        self.loopback = is_loopback(host)
        self.lock = threading.RLock()  # a check and the write it allows happen together
        self.follower = review.follower  # the log as the round read it when it opened

    def fold(self) -> DecisionFold:
        with self.lock:
            return self.follower.refresh()

    def state(self) -> dict[str, Any]:
        r = self.review
        return {
            "run": str(r.run_root),
            "round": r.round,
            "rounds": finished_rounds(r.run_root),
            "rows": len(r),
            "queue": [queue_entry(r, row_id) for row_id in r.queue],
            "decided": self.decided(),
            "reasons": list(REJECT_REASONS),
            "reviewer": self.reviewer,
        }

    def decided(self) -> dict[str, list[dict[str, Any]]]:
        """Queue row id -> every reviewer's current decision on it (the marks in the queue)."""
        fold = self.fold()
        return {row_id: [brief(d) for d in by.values()] for row_id in self.review.queue if (by := fold.of_row(row_id))}

    def row(self, row_id: str) -> dict[str, Any]:
        row = self.review.row(row_id)
        current = self.fold().of_row(row_id)
        row["decisions"] = [brief(d) for d in sorted(current.values(), key=lambda d: d.time)]
        return row

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        """One decision, or the same one on many rows (`row_ids`): all checked, then written as one line,
        so a bulk action is saved whole or (killed before it was acknowledged) not at all."""
        items = body.get("row_ids")
        if items is None:
            items = [body.get("row_id")]
        if not isinstance(items, list) or not items or len(items) > MAX_BULK:
            raise ReviewError(f"row_ids: give 1 to {MAX_BULK} row ids")
        items = list(dict.fromkeys(i if isinstance(i, str) else repr(i) for i in items))  # each row once
        edit = body.get("edit") or {}
        if not isinstance(edit, dict):
            raise ReviewError("edit: give {answer, reasoning}")
        if edit and len(items) > 1:
            raise ReviewError("edit: an edit is for one row; accept or reject marked rows in bulk")
        with self.lock:
            return self.write_decisions(items, body, edit)

    def write_decisions(self, items: list[str], body: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
        self.fold()  # a log damaged since the start is said now, before anything is added to it
        made = []
        for row_id in items:
            if row_id not in self.review.index:
                raise ReviewError(f"row_id: {row_id!r} is not a row of round {self.review.round}")
            changed = changed_fields(self.review.fields(row_id), edit) if edit else {}
            decision = new_decision(
                self.review.round, row_id, body.get("reviewer"), body.get("action"), body.get("reason"), changed
            )
            if decision.action == "accept":
                self.review.can_accept(row_id, decision.edit)
            made.append(decision)
        self.review.log.append(made)
        return {"decisions": [brief(d) for d in made]}

    def undo(self, body: dict[str, Any]) -> dict[str, Any]:
        """Take back decisions (`decision_ids`, or one `decision_id`), all of them the reviewer's own and
        still in force, in one line."""
        targets = body.get("decision_ids", [body.get("decision_id")])
        if not isinstance(targets, list) or not targets or len(targets) > MAX_BULK:
            raise ReviewError(f"decision_ids: give 1 to {MAX_BULK} decision ids")
        with self.lock:  # checked and written together (another server's undo of the same one is a no-op)
            return self.write_undos(targets, body)

    def write_undos(self, targets: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        fold = self.fold()
        made, undone = [], []
        for target in dict.fromkeys(t if isinstance(t, str) else repr(t) for t in targets):
            original = fold.by_id.get(target)
            if original is None:
                raise ReviewError("decision_id: no such decision in this run's log")
            if original.action == "undo":
                raise ReviewError("an undo cannot be undone: decide the row again instead")
            if target in fold.undone:
                raise ReviewError("that decision was undone already")
            decision = new_decision(original.round, original.row_id, body.get("reviewer"), "undo", undoes=target)
            if decision.reviewer != original.reviewer:
                raise ReviewError(f"that decision is {original.reviewer}'s: one may undo only one's own")
            made.append(decision)
            undone.append(brief(original))
        self.review.log.append(made)
        return {"undone": undone[0], "all_undone": undone}


def queue_entry(r: ReviewRound, row_id: str) -> dict[str, Any]:
    facts, why = r.facts[row_id], r.why.get(row_id)
    return {"id": row_id, "audit": row_id in r.audited, "why": why, "skill": facts.skill, "kept": facts.kept}


def brief(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "row_id": d.row_id,
        "reviewer": d.reviewer,
        "action": d.action,
        "reason": d.reason,
        "edit": d.edit,
        "time": d.time,
    }


class Handler(BaseHTTPRequestHandler):
    app: ReviewApp  # set on the subclass made per server
    server_version = "synthloop-review"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per request is noise; errors are answered to the page

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self.host_allowed():
            return self.fail(HTTPStatus.FORBIDDEN, "unexpected Host header")
        if url.path == "/":
            given = parse_qs(url.query).get("token", [""])[0]
            if not self.app.loopback and not hmac.compare_digest(given, self.app.token):
                return self.fail(HTTPStatus.UNAUTHORIZED, "open the URL the server printed (it carries ?token=...)")
            page = asset("index.html").replace("{{TOKEN}}", self.app.token)
            return self.send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        if url.path in STATIC:
            return self.send(HTTPStatus.OK, asset(url.path.rsplit("/", 1)[1]).encode(), STATIC[url.path])
        if not self.token_ok():
            return self.fail(HTTPStatus.UNAUTHORIZED, "missing or wrong X-Review-Token")
        try:
            if url.path == "/api/state":
                return self.json(self.app.state())
            if url.path.startswith("/api/row/"):
                return self.json(self.app.row(url.path[len("/api/row/") :]))
            if url.path == "/api/figures":
                return self.json(self.app.review.figures())
        except ReviewError as err:
            return self.fail(HTTPStatus.BAD_REQUEST, str(err))
        return self.fail(HTTPStatus.NOT_FOUND, "no such page")

    def do_POST(self) -> None:
        if not self.host_allowed():
            return self.fail(HTTPStatus.FORBIDDEN, "unexpected Host header")
        if not self.token_ok():
            return self.fail(HTTPStatus.UNAUTHORIZED, "missing or wrong X-Review-Token")
        try:
            body = self.read_json()
            path = urlsplit(self.path).path
            if path == "/api/decide":
                return self.json(self.app.decide(body))
            if path == "/api/undo":
                return self.json(self.app.undo(body))
        except ReviewError as err:
            return self.fail(HTTPStatus.BAD_REQUEST, str(err))
        return self.fail(HTTPStatus.NOT_FOUND, "no such action")

    def host_allowed(self) -> bool:
        if not self.app.loopback:
            return True  # the token guards a server bound to a reachable address
        host = self.headers.get("Host") or ""
        host = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "::1", self.app.host)

    def token_ok(self) -> bool:
        return hmac.compare_digest(self.headers.get("X-Review-Token", ""), self.app.token)

    def read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ReviewError("Content-Length: not a number") from None
        if length <= 0 or length > MAX_BODY:
            raise ReviewError(f"the request body must be JSON of 1 to {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ReviewError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ReviewError("the request body must be a JSON object")
        return body

    def json(self, data: Any) -> None:
        self.send(HTTPStatus.OK, json.dumps(data, ensure_ascii=False, default=str).encode(), "application/json")

    def fail(self, status: HTTPStatus, message: str) -> None:
        self.send(status, json.dumps({"error": message}).encode(), "application/json")

    def send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
        self.end_headers()
        self.wfile.write(body)


def asset(name: str) -> str:
    return resources.files("synthloop.review").joinpath("static", name).read_text()


def make_server(app: ReviewApp, port: int) -> ThreadingHTTPServer:
    handler = type("ReviewHandler", (Handler,), {"app": app})
    family = socket.AF_INET6 if ":" in app.host else socket.AF_INET
    server_class = type("ReviewServer", (ThreadingHTTPServer,), {"address_family": family})
    try:
        server = server_class((app.host, port), handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise ReviewError(
                f"port {port} on {app.host} is in use (another review server?); pass --port N for another one, or "
                "--port 0 for any free port"
            ) from None
        why = err.strerror or err
        raise ReviewError(f"cannot listen on {app.host}:{port} ({why}); check --host and --port") from None
    server.daemon_threads = True
    return server


def serve(
    run_root: Path,
    round_: int,
    host: str = "127.0.0.1",
    port: int = 8765,
    reviewer: str = "",
    audit_size: int | None = None,
    token: str | None = None,
    ready: Any = None,
) -> None:
    """Open the round, listen, print the URL and serve until interrupted. `ready(url)` is called once listening."""
    start = time.perf_counter()
    review = ReviewRound(run_root, round_, audit_size)
    app = ReviewApp(review, token or secrets.token_urlsafe(24), reviewer, host)
    server = make_server(app, port)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + ("" if app.loopback else f"?token={app.token}")
    print(
        f"synthloop: reviewing round {round_} of {run_root}: {len(review)} rows"
        + (f" ({review.duplicates} exact duplicates shown once)" if review.duplicates else "")
        + f", {len(review.queue)} in the queue "
        f"({len(review.audit.rows)} in the audit slice); opened in {time.perf_counter() - start:.1f}s",
        flush=True,
    )
    print(f"synthloop: open {url}  (Ctrl+C stops; every decision is already saved)", flush=True)
    if not app.loopback:
        warning = "synthloop: warning: listening beyond this machine; anyone with the URL's token can decide"
        print(warning, file=sys.stderr)
    if ready is not None:
        ready(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
