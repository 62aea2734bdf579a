"""A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) for peer tests and benchmarks."""
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def available() -> bool:
    return shutil.which("Orthanc") is not None and Path(DICOMWEB_PLUGIN).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """Orthanc on a free loopback port, its storage and index in `folder`, the DICOMweb plugin
    loaded; `servers` are DICOMweb servers it may query and retrieve from (name -> config)."""

    def __init__(self, folder: Path, servers=None, extra=None):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "Name": "cairn-peer", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
            "HttpPort": self.port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "Plugins": [DICOMWEB_PLUGIN], "HttpTimeout": 60,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": servers or {}},
            **(extra or {}),
        }
        self.config_path = folder / "orthanc.json"
        self.config_path.write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen(["Orthanc", str(self.config_path)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"Orthanc exited {self.proc.returncode}: {(folder / 'orthanc.log').read_text(errors='replace')[-2000:]}")
            try:
                if requests.get(self.url + "/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("Orthanc did not answer /system within 60 s")
            time.sleep(0.1)

    def get(self, path, **kwargs):
        response = requests.get(self.url + path, timeout=120, **kwargs)
        response.raise_for_status()
        return response

    def post(self, path, body, **kwargs):
        response = requests.post(self.url + path, json=body, timeout=300, **kwargs)
        response.raise_for_status()
        return response

    def upload(self, data: bytes):
        response = requests.post(self.url + "/instances", data=data, timeout=60)
        response.raise_for_status()
        return response.json()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
