"""A small fake of the Hugging Face Hub's HTTP API, for tests: runs on 127.0.0.1.

It speaks what `huggingface_hub` and `transformers` ask for, the way the real Hub answers
where it matters, and keeps every repo's files and every request in memory so that tests
can read what was pushed. Test code, not product code.

What it serves (the requests huggingface_hub 2 really sends):
- repos: create (409 if it exists), info, tree, visibility change (PUT .../settings), files
  back through `resolve` (HEAD/GET, with X-Repo-Commit and ETag; 404 + EntryNotFound).
- revisions: `resolve/{rev}` and `.../revision/{rev}` serve main or any commit's sha, with the
  files as of that commit (404 + RevisionNotFound for another revision).
- commits the way the Hub stores them. `preupload` answers "lfs" for weights and other binary
  files (the default .gitattributes patterns, `LFS_PATTERNS`), files of 10 MB or more, and files
  whose first bytes hold a NUL; "regular" otherwise. Regular files come inline (base64) in the
  NDJSON commit; LFS files go through `POST /{repo}.git/info/lfs/objects/batch`, a PUT to a
  storage URL, a verify call, then an `lfsFile` line in the commit. A commit that carries an LFS
  file inline, or names an object that was never uploaded, is refused (422). Storage URLs and
  LFS downloads use the origin `http://localhost:PORT` (the Hub's storage is another host), so
  the client sends them no token, and `resolve` answers LFS files with a 302 to it plus
  X-Linked-Etag (the sha256) and X-Linked-Size, as the Hub does. Tests run with
  HF_HUB_DISABLE_XET=1 (tests/conftest.py): with Xet the client would ask for a Xet token.
- private repos: a request without the owner's token gets 404 (RepoNotFound), writes to someone
  else's namespace 403, a missing or unknown token 401.
- Spaces: variables (GET/POST/DELETE .../variables), secrets (POST/DELETE; GET lists keys and
  descriptions, never values), runtime (GET .../runtime, also in the Space's info), restart,
  pause and hardware requests. The runtime stage follows a script: a new Space is
  NO_APP_FILE; each commit, variable or secret change (re)starts the build, and the next
  GET .../runtime calls step through `FakeHub.space_build_stages` (default BUILDING, then
  RUNNING), staying on the last. Set `FakeHub.space_build_stages` (every Space) or
  `Repo.stage_queue` (one Space) to e.g. ["BUILDING", "BUILD_ERROR"] to script a failure
  (`Repo.error_message` becomes the runtime's errorMessage).
- faults: `FakeHub.inject(method, path_regex, status=..., delay=..., times=...)` makes
  matching requests wait `delay` seconds and/or fail with `status`.

What tests read (stable API): `FakeHub(port, tokens)` with `tokens` a set (every token is
the user `me`) or a dict token -> user name; `.start()`, `.stop()`, `.url`, `.repo(id,
repo_type)`; `Repo.files` (path -> bytes), `.lfs_paths`, `.commits` (dicts: sha, summary,
paths, lfs_paths, deleted), `.private`, `.sdk`, `.variables` (key -> value), `.secrets`
(key -> {"value", "description"}), `.stage`, `.hardware`; `FakeHub.requests` ((method, path)
of every request), `.bodies` (every request body: a Space secret's value is in its POST, by
design), `.lfs_uploads` (one dict per storage PUT: oid, size, authorized), `.yaml_validated`.
`FakeHub(..., keep_bodies=False)` keeps no bodies (benchmarks that push large files).
"""

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

USER = "me"
# The patterns of the .gitattributes a new Hub repo starts with (the ones that matter here).
LFS_PATTERNS = ("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.mlmodel",
                "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle",
                "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "*.tar", "*.tflite", "*.tgz", "*.wasm",
                "*.xz", "*.zip", "*.zst")
LFS_SIZE_LIMIT = 10 * 1024 * 1024  # the Hub takes no regular file this large


def upload_mode(path: str, size: int, sample: bytes) -> str:
    """What the Hub's preupload answers for a file: "lfs" or "regular"."""
    name = path.rsplit("/", 1)[-1]
    if size >= LFS_SIZE_LIMIT or b"\x00" in sample or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS):
        return "lfs"
    return "regular"


@dataclass
class Repo:
    repo_type: str
    private: bool = False
    sdk: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_paths: set[str] = field(default_factory=set)  # files stored through LFS
    commits: list[dict] = field(default_factory=list)  # {"sha", "summary", "paths", "lfs_paths", "deleted"}
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, dict] = field(default_factory=dict)  # key -> {"value", "description"}
    stage: str = "NO_APP_FILE"  # a Space's runtime stage
    stage_queue: list[str] = field(default_factory=list)  # the stages the next runtime requests step through
    hardware: str | None = None
    requested_hardware: str | None = None
    error_message: str | None = None  # a Space's runtime errorMessage (e.g. with BUILD_ERROR), when set

    @property
    def sha(self) -> str:
        return self.commits[-1]["sha"] if self.commits else "0" * 40

    def at(self, revision: str | None) -> tuple[str, dict[str, bytes], set[str]] | None:
        """(commit sha, files, LFS paths) at a revision: main (or none) or a commit's sha; None if unknown."""
        if revision in (None, "main"):
            return self.sha, self.files, self.lfs_paths
        commit = next((c for c in self.commits if c["sha"] == revision and "snapshot" in c), None)
        return (commit["sha"], *commit["snapshot"]) if commit else None

    def runtime(self) -> dict:
        runtime = {"stage": self.stage, "hardware": {"current": self.hardware, "requested": self.requested_hardware},
                   "gcTimeout": None, "storage": None, "devMode": False}
        if self.error_message:
            runtime["errorMessage"] = self.error_message
        return runtime


@dataclass
class Fault:
    method: str
    path: str  # a regular expression, searched in the request path
    status: int | None = None  # answer this error instead of serving the request
    delay: float = 0.0  # seconds to wait first
    times: int | None = None  # how many requests it hits (None: all)


class FakeHub:
    def __init__(self, port: int, tokens: set[str] | dict[str, str], keep_bodies: bool = True):
        self.users = dict(tokens) if isinstance(tokens, dict) else {token: USER for token in tokens}
        self.tokens = set(self.users)
        self.keep_bodies = keep_bodies
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []  # every request body received, to search for secrets
        self.yaml_validated: list[dict] = []
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content: the LFS storage
        self.lfs_uploads: list[dict] = []  # {"oid", "size", "authorized"}, one per PUT to the storage
        self.faults: list[Fault] = []
        self.space_build_stages = ["BUILDING", "RUNNING"]
        self.lock = threading.Lock()
        self._signing_key = secrets.token_bytes(16)
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        self.storage_url = f"http://localhost:{port}"  # another origin, as the Hub's LFS storage is
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def inject(self, method: str, path: str, status: int | None = None, delay: float = 0.0,
               times: int | None = None) -> Fault:
        fault = Fault(method, path, status, delay, times)
        self.faults.append(fault)
        return fault

    def _signature(self, oid: str) -> str:
        return hmac.new(self._signing_key, oid.encode(), "sha256").hexdigest()[:32]

    def storage_href(self, oid: str) -> str:
        """A signed URL of an LFS object in the storage (like the Hub's pre-signed S3/CDN URLs)."""
        return f"{self.storage_url}/lfs-storage/{oid}?sig={self._signature(oid)}"

    def _start_build(self, repo: Repo) -> None:
        if repo.repo_type == "space" and repo.files:
            repo.stage_queue = list(self.space_build_stages)


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"datasets": "dataset", "spaces": "space"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    # One request per connection: a client never keeps talking to a server a test has stopped.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # quiet
        pass

    # --- plumbing ---
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._chunked_body()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        if self.fake.keep_bodies:
            self.fake.bodies.append(body)
        return body

    def _chunked_body(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

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

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return self.fake.users.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None

    def _authorized(self) -> bool:
        return self._user() is not None

    def _repo(self, repo_type: str, repo_id: str, head=False, write=False) -> Repo | None:
        """The repo, or None once the error is sent: 404 to whoever may not see it, 403 to a reader who writes."""
        repo = self.fake.repos.get((repo_type, repo_id))
        owner = repo_id.split("/")[0]
        if repo is None or (repo.private and self._user() != owner):
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}", head=head)
            return None
        if write and self._user() != owner:
            self._error(403, "Forbidden", f"You don't have the rights to write to {repo_id}", head=head)
            return None
        return repo

    def _faulted(self, method: str, path: str, head=False) -> bool:
        """Apply the first matching injected fault; True when it answered the request."""
        with self.fake.lock:
            fault = next((f for f in self.fake.faults if f.method == method and re.search(f.path, path)
                          and (f.times is None or f.times > 0)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is None:
            return False
        time.sleep(fault.delay)
        if fault.status is None:
            return False
        self._error(fault.status, "InjectedFault", f"fake hub: injected {fault.status} for {method} {path}", head=head)
        return True

    def _begin(self, method: str) -> tuple[str, dict]:
        url = urlparse(self.path)
        path = unquote(url.path)
        self.fake.requests.append((method, path))
        return path, parse_qs(url.query)

    # --- verbs ---
    def do_HEAD(self):
        self._get(head=True)

    def do_GET(self):
        self._get(head=False)

    def _get(self, head: bool):
        method = "HEAD" if head else "GET"
        path, query = self._begin(method)
        if self._faulted(method, path, head):
            return
        if path == "/api/whoami-v2":
            user = self._user()
            if user is None:
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return self._send(200, {"name": user, "type": "user", "auth": {"accessToken": {"role": "write"}}})
        match = re.fullmatch(r"/lfs-storage/([0-9a-f]{64})", path)
        if match:
            oid = match.group(1)
            if query.get("sig", [""])[0] != self.fake._signature(oid) or oid not in self.fake.lfs_objects:
                return self._error(403, "AccessDenied", "bad signature or no such object", head=head)
            return self._send(200, raw=self.fake.lfs_objects[oid], head=head)
        match = re.fullmatch(r"/api/spaces/(.+?)/(variables|secrets|runtime)", path)
        if match:
            repo = self._repo("space", match.group(1), head)
            if repo is None:
                return
            if match.group(2) == "variables":
                return self._send(200, {k: {"value": v} for k, v in repo.variables.items()}, head=head)
            if match.group(2) == "secrets":
                if self._user() != match.group(1).split("/")[0]:
                    return self._error(403, "Forbidden", "only the owner lists a Space's secrets", head=head)
                return self._send(200, {k: {"description": s.get("description")} for k, s in repo.secrets.items()},
                                  head=head)
            with self.fake.lock:
                if repo.stage_queue:
                    repo.stage = repo.stage_queue.pop(0)
                    if repo.stage.startswith("RUNNING"):
                        repo.hardware = repo.requested_hardware or repo.hardware or "cpu-basic"
            return self._send(200, repo.runtime(), head=head)
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/tree/([^/]+)(/.*)?", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2), head)
            if repo:
                self._send(200, [_tree_entry(name, data, name in repo.lfs_paths)
                                 for name, data in sorted(repo.files.items())], head=head)
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)(?:/revision/([^/]+))?", path)
        if match:
            repo_type, repo_id = _TYPES[match.group(1)], match.group(2)
            repo = self._repo(repo_type, repo_id, head)
            if repo:
                state = repo.at(match.group(3))
                if state is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {match.group(3)}", head=head)
                info = {"id": repo_id, "sha": state[0], "private": repo.private, "sdk": repo.sdk,
                        "siblings": [{"rfilename": name} for name in sorted(state[1])]}
                if repo_type == "space":
                    info["runtime"] = repo.runtime()
                self._send(200, info, head=head)
            return
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)", path)
        if match:
            repo = self._repo(_URL_PREFIX.get(match.group(1), "model"), match.group(2), head)
            if repo is None:
                return
            state = repo.at(match.group(3))  # main or a commit: the files as they were then
            if state is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {match.group(3)}", head=head)
            sha, files, lfs_paths = state
            name = match.group(4)
            if name not in files:
                return self._error(404, "EntryNotFound", f"{name} does not exist", head=head)
            data = files[name]
            headers = {"X-Repo-Commit": sha, "ETag": '"' + _git_oid(data, name in lfs_paths) + '"'}
            if name in lfs_paths:  # the Hub redirects LFS files to its storage
                oid = hashlib.sha256(data).hexdigest()
                headers.update({"Location": self.fake.storage_href(oid), "X-Linked-Etag": f'"{oid}"',
                                "X-Linked-Size": str(len(data))})
                return self._send(302, headers=headers, raw=b"", head=head)
            return self._send(200, headers=headers, raw=data, head=head)
        self._error(404, "NotFound", f"fake hub does not serve {method} {path}", head=head)

    def do_POST(self):
        path, _ = self._begin("POST")
        body = self._body()
        if self._faulted("POST", path):
            return
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            errors = _card_metadata_errors(content)
            if not errors:
                self.fake.yaml_validated.append(yaml.safe_load(content.split("---")[1]))
            return self._send(200 if not errors else 400, {"errors": errors, "warnings": []})
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        if path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)\.git/info/lfs/objects/(batch|verify)", path)
        if match:
            repo = self._repo(_URL_PREFIX.get(match.group(1), "model"), match.group(2), write=True)
            if repo is None:
                return
            payload = json.loads(body)
            if match.group(3) == "verify":
                stored = self.fake.lfs_objects.get(payload["oid"])
                if stored is None or len(stored) != payload["size"]:
                    return self._error(404, "LfsObjectNotFound", f"object {payload['oid']} was not uploaded")
                return self._send(200, {})
            return self._send(200, self._lfs_batch(payload, match.group(0)))
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/preupload/([^/]+)", path)
        if match:
            if self._repo(_TYPES[match.group(1)], match.group(2), write=True) is None:
                return
            files = json.loads(body)["files"]
            return self._send(200, {"files": [
                {"path": f["path"], "uploadMode": upload_mode(f["path"], f["size"], base64.b64decode(f["sample"])),
                 "shouldIgnore": False} for f in files]})
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/commit/([^/]+)", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2), write=True)
            if repo is not None:
                self._commit(repo, match.group(2), body)
            return
        match = re.fullmatch(r"/api/spaces/(.+?)/(variables|secrets|restart|pause|hardware)", path)
        if match:
            repo = self._repo("space", match.group(1), write=True)
            if repo is not None:
                self._space_post(repo, match.group(2), json.loads(body) if body else {})
            return
        self._error(404, "NotFound", f"fake hub does not serve POST {path}")

    def do_PUT(self):
        path, query = self._begin("PUT")
        body = self._body()
        if self._faulted("PUT", path):
            return
        match = re.fullmatch(r"/lfs-storage/([0-9a-f]{64})", path)
        if match:  # the storage: the signed URL is the credential, as with S3
            oid = match.group(1)
            if query.get("sig", [""])[0] != self.fake._signature(oid):
                return self._error(403, "AccessDenied", "bad signature")
            if hashlib.sha256(body).hexdigest() != oid:
                return self._error(400, "BadDigest", "the content does not match its sha256")
            with self.fake.lock:
                self.fake.lfs_objects[oid] = body
                self.fake.lfs_uploads.append({"oid": oid, "size": len(body),
                                              "authorized": "Authorization" in self.headers})
            return self._send(200, {})
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/settings", path)
        if match:
            repo = self._repo(_TYPES[match.group(1)], match.group(2), write=True)
            if repo:
                payload = json.loads(body)
                if "visibility" in payload:
                    repo.private = payload["visibility"] == "private"
                elif "private" in payload:
                    repo.private = bool(payload["private"])
                self._send(200, {})
            return
        self._error(404, "NotFound", f"fake hub does not serve PUT {path}")

    def do_DELETE(self):
        path, _ = self._begin("DELETE")
        body = self._body()
        if self._faulted("DELETE", path):
            return
        if not self._authorized():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        match = re.fullmatch(r"/api/spaces/(.+?)/(variables|secrets)", path)
        if match:
            repo = self._repo("space", match.group(1), write=True)
            if repo is None:
                return
            key = json.loads(body)["key"]
            with self.fake.lock:
                (repo.variables if match.group(2) == "variables" else repo.secrets).pop(key, None)
                self.fake._start_build(repo)
            if match.group(2) == "variables":
                return self._send(200, {k: {"value": v} for k, v in repo.variables.items()})
            return self._send(200, {})
        self._error(404, "NotFound", f"fake hub does not serve DELETE {path}")

    # --- endpoints with more to do ---
    def _create_repo(self, payload: dict):
        owner = payload.get("organization") or self._user()
        if owner != self._user():
            return self._error(403, "Forbidden", f"You don't have the rights to create a repo under {owner}")
        repo_id = f"{owner}/{payload['name']}"
        key = (payload.get("type") or "model", repo_id)
        with self.fake.lock:
            if key in self.fake.repos:  # the real Hub answers 409 with the repo's url
                return self._send(409, {"error": "You already created this repo", "url": f"{self.fake.url}/{repo_id}"})
            self.fake.repos[key] = Repo(repo_type=key[0], private=payload.get("visibility") == "private"
                                        or payload.get("private") is True, sdk=payload.get("sdk"),
                                        requested_hardware=payload.get("hardware"))
        return self._send(200, {"url": f"{self.fake.url}/{repo_id}", "name": repo_id})

    def _lfs_batch(self, payload: dict, batch_path: str) -> dict:
        verify_href = self.fake.url + batch_path.replace("/batch", "/verify")
        objects, seen = [], set()
        for item in payload["objects"]:
            oid, size = item["oid"], item["size"]
            if oid in seen:
                continue
            seen.add(oid)
            if oid in self.fake.lfs_objects:  # already stored: nothing to upload
                objects.append({"oid": oid, "size": size})
                continue
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": self.fake.storage_href(oid), "header": {}},
                "verify": {"href": verify_href, "header": {}},
            }})
        return {"transfer": "basic", "objects": objects}

    def _commit(self, repo: Repo, repo_id: str, body: bytes):
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        problems = []
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                data = base64.b64decode(value["content"])
                if data and upload_mode(value["path"], len(data), data[:512]) == "lfs":
                    problems.append(f"{value['path']} must be stored with LFS, not sent inline")
            elif line["key"] == "lfsFile" and value["oid"] not in self.fake.lfs_objects:
                problems.append(f"{value['path']}: LFS object {value['oid']} was never uploaded")
        if problems:
            return self._error(422, "BadRequest", "; ".join(problems))
        paths, lfs_paths, deleted = [], [], []
        with self.fake.lock:
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    repo.files[value["path"]] = base64.b64decode(value["content"])
                    repo.lfs_paths.discard(value["path"])
                    paths.append(value["path"])
                elif line["key"] == "lfsFile":
                    repo.files[value["path"]] = self.fake.lfs_objects[value["oid"]]
                    repo.lfs_paths.add(value["path"])
                    paths.append(value["path"])
                    lfs_paths.append(value["path"])
                elif line["key"] in ("deletedFile", "deletedFolder"):
                    prefix = value["path"].rstrip("/") + "/"
                    gone = [p for p in repo.files if p == value["path"] or
                            (line["key"] == "deletedFolder" and p.startswith(prefix))]
                    for name in gone:
                        repo.files.pop(name)
                        repo.lfs_paths.discard(name)
                    deleted.extend(gone)
            sha = hashlib.sha1(f"{repo_id}{len(repo.commits)}".encode()).hexdigest()
            repo.commits.append({"sha": sha, "summary": header["summary"], "paths": paths, "lfs_paths": lfs_paths,
                                 "deleted": deleted, "snapshot": (dict(repo.files), set(repo.lfs_paths))})
            self.fake._start_build(repo)
        self._send(200, {"commitUrl": f"{self.fake.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                         "pullRequestUrl": None})

    def _space_post(self, repo: Repo, action: str, payload: dict):
        with self.fake.lock:
            if action == "variables":
                repo.variables[payload["key"]] = payload["value"]
            elif action == "secrets":
                repo.secrets[payload["key"]] = {"value": payload["value"], "description": payload.get("description")}
            elif action == "pause":
                repo.stage, repo.stage_queue = "PAUSED", []
            elif action == "hardware":
                repo.requested_hardware = payload["flavor"]
            if action in ("variables", "secrets", "restart", "hardware"):
                self.fake._start_build(repo)
        if action == "variables":
            return self._send(200, {k: {"value": v} for k, v in repo.variables.items()})
        if action == "secrets":
            return self._send(200, {})
        return self._send(200, repo.runtime())


def _git_oid(data: bytes, lfs: bool) -> str:
    """The git blob id the Hub reports: of the file, or of its LFS pointer."""
    if lfs:
        data = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                f"size {len(data)}\n").encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _tree_entry(name: str, data: bytes, lfs: bool) -> dict:
    entry = {"type": "file", "path": name, "size": len(data), "oid": _git_oid(data, lfs)}
    if lfs:
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


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
