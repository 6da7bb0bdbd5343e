"""`transfer review` as a user starts it (a process in the project), and raw HTTP requests to
it: every header as the test sets it (http.client sends the Host header it is given)."""

import http.client
import json
import subprocess
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit


@contextmanager
def review_server(repo):
    """(the printed address, the process); stopped (or found killed) on leaving."""
    command = [sys.executable, "-m", "transfer", "review", "--no-browser"]
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("transfer review: http://127.0.0.1:"), line + process.stderr.read()
        yield line.split(": ", 1)[1].strip(), process
    finally:
        process.kill()
        process.wait()


class Client:
    def __init__(self, address):
        parts = urlsplit(address)
        self.port, self.token = parts.port, parts.query.removeprefix("token=")

    def request(self, method, path, body=None, host=None, token=True, headers=None):
        """(status, body bytes, headers)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        if token:
            sent["X-Review-Token"] = self.token
        if body is not None and not isinstance(body, bytes):
            body, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        answer = response.status, response.read(), dict(response.getheaders())
        connection.close()
        return answer

    def json(self, method, path, body=None):
        status, content, _ = self.request(method, path, body)
        assert status == 200, content
        return json.loads(content)
