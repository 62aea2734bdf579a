"""Memory stays bounded: 200 slow readers of one 2 GiB blob keep the node under 300 MB resident."""
import socket
import time

import numpy as np
import requests

from node import Node

GIB = 1 << 30


def test_200_slow_readers_of_a_2_gib_blob(store, tmp_path):
    path = tmp_path / "big.bin"
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        for _ in range(32):  # 32 x 64 MiB of noisy 16-bit samples: compressible, like CT
            f.write((rng.integers(0, 256, 32 << 20, dtype=np.uint16) + 1000).astype("<u2").tobytes())
    assert path.stat().st_size == 2 * GIB
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    store.run("ingest", "--dataset", "ct", str(path), timeout=900)
    digest = store.ndjson("ls", "--dataset", "ct")[0]["digest"]
    path.unlink()
    node = Node(store)
    sockets = []
    try:
        token = node.token()["token"]
        request = f"GET /v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", node.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.sendall(request)
            sockets.append(s)
        peak = 0
        received = 0
        slowest_health = 0.0
        deadline = time.time() + 20
        while time.time() < deadline:
            for s in sockets:
                s.settimeout(5)
                received += len(s.recv(256 * 1024))
            peak = max(peak, node.rss_bytes())
            started = time.time()
            assert requests.get(node.url + "/healthz", timeout=10).status_code == 200
            slowest_health = max(slowest_health, time.time() - started)
            time.sleep(0.2)
        assert received > 200 * 1024 * 1024, f"the readers only got {received} bytes"
        assert peak < 300 * 1024 * 1024, f"peak RSS {peak / 1e6:.0f} MB with 200 readers"
        # Streams share the event loops fairly: other requests are still answered promptly.
        assert slowest_health < 2, f"/healthz took {slowest_health:.2f} s under load"
        print(f"200 slow readers: peak RSS {peak / 1e6:.0f} MB, {received / 1e6:.0f} MB delivered, "
              f"slowest /healthz {slowest_health * 1000:.0f} ms")
    finally:
        for s in sockets:
            s.close()
        alive = node.alive()
        assert node.stop() == 0
        assert alive
