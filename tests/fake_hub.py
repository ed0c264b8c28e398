"""A small fake of the Hugging Face Hub's HTTP API, for tests: runs on 127.0.0.1.

It speaks what `huggingface_hub` and `transformers` ask for to create a repo, commit
files (regular upload mode: contents inline as base64), validate a card's YAML, change a
repo's visibility, set Space variables and download files back. It keeps every repo's files and every
request body in memory so tests can read what was pushed. Test code, not product code.
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

USER = "me"


@dataclass
class Repo:
    repo_type: str
    private: bool = False
    sdk: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)  # {"sha", "summary", "paths"}
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return self.commits[-1]["sha"] if self.commits else "0" * 40


class FakeHub:
    def __init__(self, port: int, tokens: set[str]):
        self.tokens = tokens
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []  # every request body received, to search for secrets
        self.yaml_validated: list[dict] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    # One request per connection: a client never keeps talking to a server a test has stopped.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # quiet
        pass

    # --- plumbing ---
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.fake.bodies.append(body)
        return body

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None, head=False):
        data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, head=False):
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer "):] in self.fake.tokens

    def _repo(self, repo_type: str, repo_id: str, head=False) -> Repo | None:
        repo = self.fake.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}", head=head)
            return None
        return repo

    # --- verbs ---
    def do_HEAD(self):
        self._get(head=True)

    def do_GET(self):
        self._get(head=False)

    def _get(self, head: bool):
        path = unquote(urlparse(self.path).path)
        self.fake.requests.append(("HEAD" if head else "GET", path))
        if path == "/api/whoami-v2":
            if not self._authorized():
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return self._send(200, {"name": USER, "type": "user", "auth": {"accessToken": {"role": "write"}}})
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)(?:/revision/([^/]+))?", path)
        if match and "/tree/" not in path and not path.endswith("/variables"):
            repo_type, repo_id = _TYPES[match.group(1)], match.group(2)
            repo = self._repo(repo_type, repo_id, head)
            if repo:
                self._send(200, {"id": repo_id, "sha": repo.sha, "private": repo.private, "sdk": repo.sdk,
                                 "siblings": [{"rfilename": name} for name in sorted(repo.files)]}, head=head)
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/tree/([^/]+)(/.*)?", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2), head)
            if repo:
                entries = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                           for name, data in sorted(repo.files.items())]
                self._send(200, entries, head=head)
            return
        match = re.fullmatch(r"/api/spaces/(.+?)/variables", path)
        if match:
            repo = self._repo("space", match.group(1), head)
            if repo:
                self._send(200, {k: {"value": v} for k, v in repo.variables.items()}, head=head)
            return
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)", path)
        if match:
            repo_type = _TYPES.get(match.group(1) or "models", "model")
            repo = self._repo(repo_type, match.group(2), head)
            if repo is None:
                return
            name = match.group(4)
            if name not in repo.files:
                return self._error(404, "EntryNotFound", f"{name} does not exist", head=head)
            data = repo.files[name]
            etag = '"' + hashlib.sha1(data).hexdigest() + '"'
            return self._send(200, headers={"X-Repo-Commit": repo.sha, "ETag": etag}, raw=data, head=head)
        self._error(404, "NotFound", f"fake hub does not serve GET {path}", head=head)

    def do_POST(self):
        path = unquote(urlparse(self.path).path)
        body = self._body()
        self.fake.requests.append(("POST", path))
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            errors = _card_metadata_errors(content)
            if not errors:
                self.fake.yaml_validated.append(yaml.safe_load(content.split("---")[1]))
            return self._send(200 if not errors else 400, {"errors": errors, "warnings": []})
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            key = (payload.get("type") or "model", repo_id)
            with self.fake.lock:
                if key in self.fake.repos:  # the real Hub answers 409 with the repo's url
                    return self._send(409, {"error": "You already created this repo",
                                            "url": f"{self.fake.url}/{repo_id}"})
                self.fake.repos[key] = Repo(repo_type=key[0], private=payload.get("visibility") == "private",
                                            sdk=payload.get("sdk"))
            return self._send(200, {"url": f"{self.fake.url}/{repo_id}", "name": repo_id})
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/preupload/([^/]+)", path)
        if match:
            files = json.loads(body)["files"]
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/commit/([^/]+)", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2))
            if repo is None:
                return
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            paths = []
            with self.fake.lock:
                for line in lines:
                    if line["key"] == "file":
                        repo.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                        paths.append(line["value"]["path"])
                    elif line["key"] == "deletedFile":
                        repo.files.pop(line["value"]["path"], None)
                sha = hashlib.sha1(f"{match.group(2)}{len(repo.commits)}".encode()).hexdigest()
                repo.commits.append({"sha": sha, "summary": header["summary"], "paths": paths})
            return self._send(200, {"commitUrl": f"{self.fake.url}/{match.group(2)}/commit/{sha}",
                                    "commitOid": sha, "pullRequestUrl": None})
        match = re.fullmatch(r"/api/spaces/(.+?)/variables", path)
        if match:
            repo = self._repo("space", match.group(1))
            if repo:
                payload = json.loads(body)
                repo.variables[payload["key"]] = payload["value"]
                self._send(200, {k: {"value": v} for k, v in repo.variables.items()})
            return
        self._error(404, "NotFound", f"fake hub does not serve POST {path}")


    def do_PUT(self):
        path = unquote(urlparse(self.path).path)
        body = self._body()
        self.fake.requests.append(("PUT", path))
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/settings", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2))
            if repo:
                payload = json.loads(body)
                if "visibility" in payload:
                    repo.private = payload["visibility"] == "private"
                elif "private" in payload:
                    repo.private = bool(payload["private"])
                self._send(200, {})
            return
        self._error(404, "NotFound", f"fake hub does not serve PUT {path}")


def _card_metadata_errors(readme: str) -> list[dict]:
    """The checks of the Hub's metadata validation that matter here: YAML front matter and model-index shape."""
    parts = readme.split("---")
    if not readme.startswith("---") or len(parts) < 3:
        return [{"message": "no YAML front matter"}]
    try:
        metadata = yaml.safe_load(parts[1]) or {}
    except yaml.YAMLError as err:
        return [{"message": f"invalid YAML: {err}"}]
    errors = []
    for entry in metadata.get("model-index", []):
        if "name" not in entry:
            errors.append({"message": "model-index entry without name"})
        for result in entry.get("results", []):
            if "type" not in result.get("task", {}):
                errors.append({"message": "result without task.type"})
            if not {"type", "name"} <= set(result.get("dataset", {})):
                errors.append({"message": "result without dataset type and name"})
            for metric in result.get("metrics", []):
                if not {"type", "value"} <= set(metric):
                    errors.append({"message": "metric without type and value"})
    return errors
