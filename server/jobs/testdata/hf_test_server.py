#!/usr/bin/env python3
"""A tiny Hugging Face hub look-alike for fetcher tests (python3 stdlib only).

usage: hf_test_server.py MODEL_DIR LOG_FILE TOKEN

Serves MODEL_DIR on 127.0.0.1 (free port, printed as the first stdout line) as:
  GET /api/models/slq-test/<repo>/revision/main   listing with sizes and lfs.sha256
  GET /slq-test/<repo>/resolve/{main,0123abcd}/<file>        the file, honouring "Range: bytes=N-"
  GET /plain/<file>                               plain directory layout (https:// fetcher)
repos: "tiny" (correct), "badsha" (wrong lfs.sha256 for *.safetensors), "private" (needs
"Authorization: Bearer TOKEN", else 401), "norange" (ignores Range: always 200, whole file). Every request is logged to LOG_FILE as JSON lines
{"path", "range", "auth"}.
"""
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_DIR, LOG_FILE, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
LOG_LOCK = threading.Lock()
COMMIT = "0123abcd"  # the "sha" of revision main; resolve accepts both
FILES = sorted(f for f in os.listdir(MODEL_DIR) if os.path.isfile(os.path.join(MODEL_DIR, f)))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def listing(repo):
    siblings = []
    for name in FILES:
        path = os.path.join(MODEL_DIR, name)
        entry = {"rfilename": name, "size": os.path.getsize(path)}
        if name.endswith(".safetensors"):
            sha = sha256_of(path)
            if repo == "badsha":
                sha = "0" * 64
            entry["lfs"] = {"sha256": sha, "size": entry["size"]}
        siblings.append(entry)
    return {"id": "slq-test/" + repo, "sha": COMMIT, "siblings": siblings}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _log(self):
        rec = {"path": self.path, "range": self.headers.get("Range", ""),
               "auth": self.headers.get("Authorization", "")}
        with LOG_LOCK, open(LOG_FILE, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def _send(self, code, body, ctype="application/json", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _file(self, name):
        if name not in FILES:
            return self._send(404, b'{"error": "Entry not found"}')
        with open(os.path.join(MODEL_DIR, name), "rb") as f:
            data = f.read()
        rng = "" if self.path.startswith("/slq-test/norange/") else self.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self._send(416, b"", extra={"Content-Range": "bytes */%d" % len(data)})
            return self._send(206, data[start:], "application/octet-stream",
                              {"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        return self._send(200, data, "application/octet-stream")

    def do_GET(self):
        self._log()
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "plain" and len(parts) == 2:
            return self._file(parts[1])
        repo = None
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[2] == "slq-test":
            repo, rev = parts[3], parts[5]
        elif len(parts) == 5 and parts[0] == "slq-test" and parts[2] == "resolve":
            repo, rev = parts[1], parts[3]
        if repo not in ("tiny", "badsha", "private", "norange") or rev not in ("main", COMMIT):
            return self._send(404, b'{"error": "Repository not found"}')
        if repo == "private" and self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self._send(401, b'{"error": "Invalid credentials"}')
        if parts[0] == "api":
            return self._send(200, json.dumps(listing(repo)).encode())
        return self._file(parts[4])


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
