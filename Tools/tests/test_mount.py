"""`cairn mount`: datasets as a read-only folder of DICOM files, read by the tools jobs use
(pydicom, SimpleITK, dicom2nifti, tar, sha256sum, cmp), with damage, erasure and crashes."""
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import GATED, cairn_binary, image_like, seeded_rng, wait_until
from dicom_gen import write_ct_study

if not os.path.exists("/dev/fuse"):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run on a machine with /dev/fuse (see Tools/install-deps.sh)")
    pytest.skip("no /dev/fuse on this machine", allow_module_level=True)


class Mount:
    """A `cairn mount --foreground` process and its mountpoint."""

    def __init__(self, store, point: Path, datasets: str, subject="job-7", extra=()):
        self.store, self.point = store, point
        self.metrics = point.parent / (point.name + ".prom")
        # Files, not pipes: a daemon logging into a full pipe would block inside a FUSE request.
        self.log_path = point.parent / (point.name + ".log")
        point.mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [cairn_binary(), "mount", str(point), "--datasets", datasets, "--subject", subject, "--foreground",
                 "--metrics-file", str(self.metrics), "--data", str(store.root), *extra],
                stdout=log, stderr=log, env=store.env)
        wait_until(lambda: os.path.ismount(point) or self.proc.poll() is not None, 20, "the mount to come up")
        if self.proc.poll() is not None:
            raise AssertionError(f"cairn mount exited {self.proc.returncode}: {self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM; the daemon must unmount and exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        if os.path.ismount(self.point):
            subprocess.run(["fusermount3", "-u", "-z", str(self.point)], check=False)
            raise AssertionError("the mount outlived its daemon")
        return self.proc.returncode


@contextmanager
def mounted(store, point: Path, datasets: str, **kwargs):
    mount = Mount(store, point, datasets, **kwargs)
    try:
        yield mount
    finally:
        status = mount.stop()
    assert status == 0, f"cairn mount exited {status}: {mount.log()}"


def audit_rows(store):
    lines = store.run("audit", "export").stdout.decode().splitlines()
    return [line.split("\t") for line in lines]


def members(store, dataset):
    """digest hex -> name, from `ls --dataset`."""
    out = {}
    for line in store.run("ls", "--dataset", dataset).stdout.decode().splitlines():
        fields = line.split("\t")
        out[fields[0].removeprefix("sha256:")] = fields[-1]
    return out


@pytest.fixture
def dicom_store(store, dicom_files):
    """Every pydicom test file, ingested into the ungated dataset `ct` (their patients' names are the
    test files' own: a gated dataset refuses nearly all of them)."""
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    store.run("ingest", *map(str, dicom_files), "--dataset", "ct", check=False)
    return store


def test_every_mounted_file_is_the_original_and_reads_in_pydicom(dicom_store, dicom_files, tmp_path):
    by_digest = {}
    for path in dicom_files:
        by_digest.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    stored = members(dicom_store, "ct")
    assert len(stored) >= 30
    dicom_store.run("dataset", "create", *GATED, "other", "--allow-non-dicom")
    with mounted(dicom_store, tmp_path / "mnt", "ct") as mount:
        root = mount.point / "ct"
        assert os.listdir(mount.point) == ["ct"], "only the named datasets are visible"
        files = [p for p in root.rglob("*") if p.is_file() and p.name != "index.json"]
        assert len(files) == len(stored)
        seen = set()
        dicom_compared = 0
        for path in files:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            assert digest in stored, f"{path} is no stored blob"
            seen.add(digest)
            assert path.stat().st_size == len(data)
            assert path.stat().st_mode & 0o777 == 0o440
            original = by_digest[digest]
            assert data == original.read_bytes()
            if (root / "files") not in path.parents:
                try:
                    theirs = pydicom.dcmread(original, force=True)
                    expected = [(e.tag, e.VR, e.value) for e in theirs.iterall()]
                except Exception as exc:  # noqa: BLE001 - the mounted copy must fail alike
                    with pytest.raises(type(exc)):
                        pydicom.dcmread(path, force=True)
                    continue
                mine = pydicom.dcmread(path, force=True)
                assert [(e.tag, e.VR, e.value) for e in mine.iterall()] == expected, path
                dicom_compared += 1
        assert seen == set(stored)
        assert dicom_compared >= 30

        # sha256sum over the mount agrees with the digests; tar archives it whole.
        sums = subprocess.run(["sha256sum", *map(str, files)], capture_output=True, check=True).stdout.decode()
        assert {line.split()[0] for line in sums.splitlines()} == set(stored)
        archive = tmp_path / "ct.tar"
        subprocess.run(["tar", "-cf", str(archive), "-C", str(mount.point), "ct"], check=True)
        with tarfile.open(archive) as tar:
            assert sum(1 for m in tar.getmembers() if m.isfile()) == len(files) + 1

        # Stable attributes: the same inode, size and time on a second look.
        first = [(p.stat().st_ino, p.stat().st_size, p.stat().st_mtime) for p in files]
        assert first == [(p.stat().st_ino, p.stat().st_size, p.stat().st_mtime) for p in files]

        # index.json: the reference node's shape; every path and series folder is there.
        index = json.loads((root / "index.json").read_bytes())
        assert isinstance(index, list) and index
        instances = 0
        for study in index:
            assert set(study) >= {"studyId", "studyName", "subjectName", "path", "series", "url"}
            assert study["path"].split("/")[0] == study["subjectName"]
            assert (root / study["path"]).is_dir()
            for series in study["series"]:
                folder = root / study["path"] / series["folderName"]
                assert len(list(folder.iterdir())) == series["instances"]
                instances += series["instances"]
        assert instances == sum(1 for p in files if (root / "files") not in p.parents)

        # Read-only: nothing can be written, created or removed.
        target = files[0]
        for action in (lambda: open(target, "r+b"), lambda: (root / "new.dcm").write_bytes(b"x"), target.unlink):
            with pytest.raises(OSError) as refused:
                action()
            assert refused.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert mount.proc.returncode == 0

    # Every open was audited with the job's subject, and the chain still verifies.
    reads = [row for row in audit_rows(dicom_store) if row[3] == "mount.read"]
    assert {row[2] for row in reads} == {"job-7"}
    assert {row[5].removeprefix("sha256:") for row in reads if row[5] != "-"} == set(stored)
    assert dicom_store.run("audit", "verify").returncode == 0


def test_simpleitk_and_dicom2nifti_read_a_mounted_study_like_the_originals(store, tmp_path):
    import dicom2nifti
    import nibabel
    import SimpleITK as sitk

    originals = tmp_path / "orig"
    originals.mkdir()
    series = write_ct_study(originals, "SUBJ-CT-1", series_count=2, slices=12)
    store.run("dataset", "create", *GATED, "study")
    store.run("ingest", str(originals), "--dataset", "study")
    with mounted(store, tmp_path / "mnt", "study") as mount:
        subject = mount.point / "study" / "SUBJ-CT-1"
        (study_folder,) = list(subject.iterdir())
        for uid, paths in series.items():
            folder = study_folder / uid
            reader = sitk.ImageSeriesReader()
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
            assert len(names) == len(paths)
            reader.SetFileNames(names)
            mounted_image = reader.Execute()
            original = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(originals), uid))
            assert np.array_equal(sitk.GetArrayFromImage(mounted_image), sitk.GetArrayFromImage(original))
            assert mounted_image.GetSpacing() == original.GetSpacing()
            assert mounted_image.GetOrigin() == original.GetOrigin()

        out_mounted, out_original = tmp_path / "nii_mounted", tmp_path / "nii_original"
        out_mounted.mkdir()
        out_original.mkdir()
        dicom2nifti.convert_directory(str(study_folder), str(out_mounted), compression=True, reorient=True)
        dicom2nifti.convert_directory(str(originals), str(out_original), compression=True, reorient=True)
        made = sorted(out_mounted.iterdir())
        assert len(made) == 2 and [p.name for p in made] == sorted(p.name for p in out_original.iterdir())
        for path in made:
            a = nibabel.load(str(path))
            b = nibabel.load(str(out_original / path.name))
            assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            assert np.allclose(a.affine, b.affine)


def test_random_ranges_and_twenty_concurrent_readers(store, tmp_path):
    rng = seeded_rng("mount ranges")
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    sources = {}
    # Distinct sizes, so no two files dedupe into one blob.
    for n, size in enumerate(rng.sample([0, 1, 4095, 65536, 65537, 3 * 2**20 + 17], 6)):
        path = tmp_path / f"blob{n}.bin"
        path.write_bytes(image_like(size, seed=rng.randrange(2**31)))
        sources[path.name] = path.read_bytes()
    store.run("ingest", *[str(tmp_path / name) for name in sources], "--dataset", "blobs")
    with mounted(store, tmp_path / "mnt", "blobs") as mount:
        files = {p.name.split("~")[0]: p for p in (mount.point / "blobs" / "files").iterdir()}
        assert set(files) == set(sources)
        for name, data in sources.items():
            fd = os.open(files[name], os.O_RDONLY)
            try:
                for _ in range(40):
                    start = rng.randrange(len(data) + 2)
                    length = rng.randrange(200_000)
                    assert os.pread(fd, length, start) == data[start:start + length], (name, start, length)
            finally:
                os.close(fd)
        errors = []

        def reader(worker):
            local = seeded_rng(f"mount reader {worker}")
            try:
                for _ in range(10):
                    name = local.choice(sorted(sources))
                    with open(files[name], "rb") as f:
                        if local.random() < 0.5:
                            assert f.read() == sources[name]
                        else:
                            start = local.randrange(len(sources[name]) + 1)
                            f.seek(start)
                            assert f.read(65536) == sources[name][start:start + 65536]
            except Exception as exc:  # noqa: BLE001 - collected and raised in the main thread
                errors.append(f"reader {worker}: {exc!r}")

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors


@pytest.mark.local_files
def test_a_damaged_frame_is_eio_for_its_range_only(store, tmp_path):
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    data = image_like(2 * 2**20, seed=11)
    (tmp_path / "big.bin").write_bytes(data)
    other = image_like(300_000, seed=12)
    (tmp_path / "other.bin").write_bytes(other)
    store.run("ingest", str(tmp_path / "big.bin"), str(tmp_path / "other.bin"), "--dataset", "blobs")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = Path(store.path(digest))
    damaged = bytearray(blob.read_bytes())
    # A byte in the middle of the frames (the seek table is at the end).
    damaged[len(damaged) // 3] ^= 0x40
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(damaged))
    with mounted(store, tmp_path / "mnt", "blobs") as mount:
        folder = mount.point / "blobs" / "files"
        failed, good = [], 0
        fd = os.open(folder / "big.bin", os.O_RDONLY)
        try:
            for start in range(0, len(data), 65536):
                try:
                    chunk = os.pread(fd, 65536, start)
                except OSError as error:
                    assert error.errno == errno.EIO
                    failed.append(start)
                    continue
                assert chunk == data[start:start + 65536], f"wrong bytes at {start}, never allowed"
                good += 1
        finally:
            os.close(fd)
        assert 1 <= len(failed) <= 2, failed
        assert good >= len(data) // 65536 - 2
        assert (folder / "other.bin").read_bytes() == other

        def checksum_failures():
            text = mount.metrics.read_text() if mount.metrics.exists() else ""
            rows = [line for line in text.splitlines() if line.startswith("cairn_mount_checksum_failures_total")]
            return rows and int(rows[0].split()[-1])

        assert wait_until(checksum_failures, 15, "the metrics file to count the damaged frame") >= 1
    log = mount.log()
    assert "damaged frame" in log and digest in log


@pytest.mark.local_files
def test_a_damaged_raw_blob_is_eio_and_verify_marks_it(store, tmp_path):
    """Incompressible bytes are stored raw (no frame checksums): the whole blob is checked against
    its digest before its first byte is served; once `verify` marks it, every open is EIO."""
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    rng = seeded_rng("raw blob")
    data = bytes(rng.getrandbits(8) for _ in range(300_000))
    (tmp_path / "noise.bin").write_bytes(data)
    (tmp_path / "fine.bin").write_bytes(image_like(100_000, seed=3))
    store.run("ingest", str(tmp_path / "noise.bin"), str(tmp_path / "fine.bin"), "--dataset", "blobs")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert "raw" in store.run("ls", "--dataset", "blobs").stdout.decode().split(digest)[1].splitlines()[0]
    blob = Path(store.path(digest))
    damaged = bytearray(blob.read_bytes())
    damaged[123_456] ^= 0x01
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(damaged))
    with mounted(store, tmp_path / "mnt", "blobs") as mount:
        folder = mount.point / "blobs" / "files"
        with pytest.raises(OSError) as refused:
            (folder / "noise.bin").read_bytes()
        assert refused.value.errno == errno.EIO
        assert (folder / "fine.bin").read_bytes() == image_like(100_000, seed=3)
        assert store.run("verify", check=False).returncode == 1
        # verify marked it corrupt: the view follows, and the open is refused for that reason.
        def refused_for_state():
            with pytest.raises(OSError) as again:
                (folder / "noise.bin").read_bytes()
            assert again.value.errno == errno.EIO
            return "verify found the blob corrupt" in mount.log()

        wait_until(refused_for_state, 10, "the open refused for the blob's state")


def test_the_view_follows_ingest_and_erasure(store, tmp_path):
    originals = tmp_path / "orig"
    originals.mkdir()
    write_ct_study(originals, "SUBJ-A1", series_count=1, slices=3, seed=2)
    later = tmp_path / "later"
    later.mkdir()
    write_ct_study(later, "SUBJ-B1", series_count=1, slices=2, seed=3)
    store.run("dataset", "create", *GATED, "live")
    store.run("ingest", str(originals), "--dataset", "live")
    with mounted(store, tmp_path / "mnt", "live") as mount:
        root = mount.point / "live"
        assert sorted(p.name for p in root.iterdir()) == ["SUBJ-A1", "index.json"]
        store.run("ingest", str(later), "--dataset", "live")
        wait_until(lambda: (root / "SUBJ-B1").exists(), 5, "the new subject to appear")
        wait_until(lambda: "SUBJ-B1" in (root / "index.json").read_text(), 5, "index.json to list it")
        files_b = [p for p in (root / "SUBJ-B1").rglob("*.dcm")]
        assert len(files_b) == 2
        held = os.open(files_b[0], os.O_RDONLY)
        assert os.pread(held, 128, 0) == b"\0" * 128
        store.run("dataset", "erase-subject", "live", "SUBJ-B1")
        started = time.monotonic()
        wait_until(lambda: not (root / "SUBJ-B1").exists(), 5, "the erased subject to go")
        elapsed = time.monotonic() - started
        print(f"erased subject gone from the mount {elapsed:.2f} s after erase-subject returned")
        assert elapsed < 1.0
        with pytest.raises(FileNotFoundError):
            files_b[1].stat()
        # The file already open: its cached pages were dropped, and the read is refused (by the
        # kernel revalidating the inode, or by the daemon, which checks every read against the view).
        with pytest.raises(OSError) as gone:
            os.pread(held, 4096, 4096)
        assert gone.value.errno == errno.ENOENT
        os.close(held)
        assert "SUBJ-B1" not in (root / "index.json").read_text()
        assert (root / "SUBJ-A1").is_dir()


def test_files_open_at_unmount_are_audited(store, tmp_path):
    (tmp_path / "a.bin").write_bytes(image_like(200_000, seed=4))
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    store.run("ingest", str(tmp_path / "a.bin"), "--dataset", "blobs")
    mount = Mount(store, tmp_path / "mnt", "blobs", subject="job-held")
    fd = os.open(mount.point / "blobs" / "files" / "a.bin", os.O_RDONLY)
    assert len(os.pread(fd, 65536, 0)) == 65536
    assert mount.stop() == 0
    os.close(fd)
    rows = [row for row in audit_rows(store) if row[2] == "job-held"]
    held = [row for row in rows if row[3] == "mount.read"]
    assert len(held) == 1 and "still open at unmount" in held[0][9] and int(held[0][7]) >= 65536
    assert f"uid {os.getuid()}" in held[0][9]
    assert [row[3] for row in rows][-1] == "mount.stop"
    assert store.run("audit", "verify").returncode == 0


def test_kill_minus_nine_leaves_a_stale_mount_that_mount_recovers(store, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"hello mount")
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    store.run("ingest", str(tmp_path / "a.bin"), "--dataset", "blobs")
    point = tmp_path / "mnt"
    point.mkdir()
    started = store.run("mount", str(point), "--datasets", "blobs")
    assert b"in the background" in started.stdout
    pid = int(started.stdout.decode().split("(pid ")[1].split(")")[0])
    try:
        assert (point / "blobs" / "files" / "a.bin").read_bytes() == b"hello mount"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
                   10, "the daemon to die")
        with pytest.raises(OSError) as dead:
            os.listdir(point)
        assert dead.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
        again = store.run("mount", str(point), "--datasets", "blobs")
        assert b"left mounted by a daemon that died" in again.stderr
        assert (point / "blobs" / "files" / "a.bin").read_bytes() == b"hello mount"
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False)
    wait_until(lambda: not os.path.ismount(point), 10, "fusermount3 -u to unmount")


def test_fusermount_unmounts_cleanly_and_the_stop_is_audited(store, tmp_path):
    store.run("dataset", "create", *GATED, "blobs", "--allow-non-dicom")
    mount = Mount(store, tmp_path / "mnt", "blobs")
    subprocess.run(["fusermount3", "-u", str(mount.point)], check=True)
    assert mount.proc.wait(timeout=20) == 0
    actions = [row[3] for row in audit_rows(store)]
    assert actions[-2:] == ["mount.start", "mount.stop"]


def test_unusable_setups_fail_with_one_line_and_status_2(store, tmp_path):
    point = tmp_path / "mnt"
    point.mkdir()

    def fails(*args, data=None, wrap=()):
        proc = subprocess.run([*wrap, cairn_binary(), "mount", *args, "--foreground", "--data", str(data or store.root)],
                              capture_output=True, timeout=30)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, lines
        return lines[0]

    assert "no dataset 'nope'" in fails(str(point), "--datasets", "nope")
    assert "does not exist" in fails(str(tmp_path / "absent"), "--datasets", "default")
    assert "no Cairn store" in fails(str(point), "--datasets", "default", data=tmp_path / "nostore")
    with mounted(store, point, "default"):
        assert "already a mount point" in fails(str(point), "--datasets", "default")
    if shutil.which("unshare") and os.geteuid() == 0:
        script = f'mount -t tmpfs none /dev && exec "$@"'
        line = fails(str(point), "--datasets", "default", wrap=("unshare", "-m", "sh", "-c", script, "sh"))
        assert "/dev/fuse" in line
