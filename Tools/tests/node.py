"""A real `cairn node serve` process for the acceptance tests."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from conftest import cairn_binary


def proc_status_bytes(pid, field):
    """A memory figure (VmRSS, VmHWM, ...) of a running process, in bytes, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


class Node:
    """Starts the node on a free loopback port and stops it with SIGTERM."""

    def __init__(self, store, node_id="test-node", config=None, extra=()):
        self.store = store
        args = [cairn_binary(), "node", "serve", "--data", str(store.root), "--listen", "127.0.0.1:0",
                "--node-id", node_id, *extra]
        if config is not None:
            path = store.root.parent / f"node-{time.monotonic_ns()}.json"
            # An explicit --config replaces $CAIRN_CONFIG: it must name the same blob store.
            if store.config:
                config = {**json.loads(Path(store.config).read_text()), **config}
            path.write_text(json.dumps(config))
            args += ["--config", str(path)]
        # The log goes to a file: a pipe nobody reads would stall the node once full.
        self.log_path = store.root.parent / f"node-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=store.env)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node did not start: {line!r} {self.log_path.read_text(errors='replace')}")
        self.url = line.split("listening on ")[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        # /metrics and /readyz's reasons need a monitor token: issued now, while the index is free
        # (a test may later hold its write lock, which `token issue` needs for its audit record).
        self.monitor = self.token(datasets="", scope="monitor", subject="prometheus", ttl="1d")

    def token(self, datasets="ct", scope="read", ttl="1h", subject="job-1", audience=None):
        args = ["token", "issue", "--subject", subject, "--datasets", datasets, "--scope", scope, "--ttl", ttl]
        if audience:
            args += ["--audience", audience]
        return self.store.json(*args)

    def headers(self, token, **extra):
        return {"Authorization": f"Bearer {token['token'] if isinstance(token, dict) else token}", **extra}

    def get(self, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers = self.headers(token, **headers)
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)

    def ready(self):
        """/readyz as a monitor sees it, with the reasons."""
        return requests.get(self.url + "/readyz", headers=self.headers(self.monitor), timeout=10)

    def rss_bytes(self):
        return proc_status_bytes(self.proc.pid, "VmRSS")

    def metrics(self):
        values = {}
        for line in requests.get(self.url + "/metrics", headers=self.headers(self.monitor), timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"node did not stop within {timeout} s of SIGTERM")
        return self.proc.returncode

    def alive(self):
        try:
            return self.proc.poll() is None and requests.get(self.url + "/healthz", timeout=10).status_code == 200
        except requests.RequestException:
            return False
