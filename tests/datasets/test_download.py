"""Download tests against a real HTTP server on 127.0.0.1 serving tiny IDX files.

``SHA256`` is patched to the tiny files' checksums (of the decompressed bytes),
so the code path is exactly the one used for the real mirrors.
"""

import gzip
import hashlib
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastmlp.datasets import mnist as data
from fastmlp.datasets import download as download_module
from fastmlp.datasets.mnist import download, load_mnist
from fastmlp.errors import DataError, DataUnavailableError

from helpers import REPO  # noqa: E402


def idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_raw_files(seed=0):
    """The four files' uncompressed IDX bytes for a 6 + 3 example data set."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 10, 6),
              rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3))
    return {name: idx_bytes(a) for name, a in zip(data.IDX_FILES, arrays)}


RAW = tiny_raw_files()
GZ = {name: gzip.compress(raw, compresslevel=9, mtime=0) for name, raw in RAW.items()}


class Server:
    """A ThreadingHTTPServer serving ``files`` (URL path -> bytes); records every GET."""

    def __init__(self, files, delay=0.0):
        self.files, self.delay, self.log, self.times = dict(files), delay, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.log.append(self.path)
                server.times.append(time.time())
                time.sleep(server.delay)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test): expected, not a server failure

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval makes shutdown() quick (default 0.5 s per server).
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, prefix):
        return f"{self.base}/{prefix}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def mirror_files(prefix, files=GZ):
    return {f"/{prefix}/{name}.gz": body for name, body in files.items()}


@pytest.fixture
def server():
    s = Server(mirror_files("good"))
    yield s
    s.close()


def dead_url():
    """A URL on a port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Tiny checksums, a private cache, no FASTMLP_DATA, no proxies."""
    for name, raw in RAW.items():
        monkeypatch.setitem(data.SHA256["mnist"], name, hashlib.sha256(raw).hexdigest())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.delenv("FASTMLP_MIRRORS", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "xdg" / "fastmlp" / "mnist"


def visible_files(folder):
    """Everything in ``folder`` except the lock file (which must stay, see _exclusive_lock)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock")


def expected_names():
    return sorted(name + ".gz" for name in data.IDX_FILES)


def assert_tiny(ds):
    assert ds.X_train.shape == (6, 784) and ds.X_test.shape == (3, 784)
    np.testing.assert_array_equal(ds.y_train, np.frombuffer(RAW["train-labels-idx1-ubyte"][8:], np.uint8))
    np.testing.assert_array_equal(ds.X_test.ravel(), np.frombuffer(RAW["t10k-images-idx3-ubyte"][16:], np.uint8))


def test_download_into_empty_cache(server, cache, capsys):
    ds = load_mnist(mirrors=[server.url("good")])
    assert_tiny(ds)
    assert visible_files(cache) == expected_names()  # no .part files left over
    for name in data.IDX_FILES:
        assert (cache / (name + ".gz")).read_bytes() == GZ[name]
    err = capsys.readouterr().err
    assert "downloading train-images-idx3-ubyte.gz" in err and "(100%)" in err
    # A second load uses the verified cache: no new requests.
    n = len(server.log)
    assert_tiny(load_mnist(mirrors=[server.url("good")], progress=False))
    assert len(server.log) == n


def test_download_mirrors_from_environment(server, cache, monkeypatch, capsys):
    monkeypatch.setenv("FASTMLP_MIRRORS", f"{dead_url()}, {server.url('good')}")
    assert_tiny(load_mnist(progress=False))
    assert capsys.readouterr().err == ""  # progress=False is silent


def test_first_mirror_404_then_second(server, cache):
    assert_tiny(load_mnist(mirrors=[server.url("missing"), server.url("good")], progress=False))
    assert server.log[:2] == ["/missing/train-images-idx3-ubyte.gz", "/good/train-images-idx3-ubyte.gz"]
    assert visible_files(cache) == expected_names()


def test_first_mirror_unreachable_then_second(server, cache):
    assert_tiny(load_mnist(mirrors=[dead_url(), server.url("good")], progress=False, timeout=5))
    assert visible_files(cache) == expected_names()


def test_checksum_mismatch_everywhere(cache):
    bad = dict(GZ, **{"train-labels-idx1-ubyte": gzip.compress(RAW["t10k-labels-idx1-ubyte"])})
    srv = Server({**mirror_files("a", bad), **mirror_files("b", bad)})
    try:
        with pytest.raises(DataUnavailableError) as info:
            load_mnist(mirrors=[srv.url("a"), srv.url("b")], progress=False)
    finally:
        srv.close()
    message = str(info.value)
    assert "\n" not in message
    assert f"{srv.url('a')}train-labels-idx1-ubyte.gz (checksum mismatch" in message
    assert f"{srv.url('b')}train-labels-idx1-ubyte.gz (checksum mismatch" in message
    # train-images was good and stays; the bad labels were never written.
    assert visible_files(cache) == ["train-images-idx3-ubyte.gz"]


def test_not_gzip_from_server(cache):
    srv = Server(mirror_files("a", dict(GZ, **{"train-images-idx3-ubyte": b"<html>oops</html>"})))
    try:
        with pytest.raises(DataUnavailableError, match=r"train-images-idx3-ubyte.gz \(checksum mismatch"):
            load_mnist(mirrors=[srv.url("a")], progress=False)
    finally:
        srv.close()
    assert visible_files(cache) == []


def test_all_mirrors_unreachable(cache):
    urls = [dead_url(), "http://127.0.0.1:9/x/"]
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(mirrors=urls, progress=False, timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert f"{urls[0]}train-images-idx3-ubyte.gz (connection refused)" in message
    assert str(cache) in message
    for name in data.IDX_FILES:
        assert name + ".gz" in message
    assert "FASTMLP_DATA" in message and "--data-dir" in message
    assert info.value.__context__ is None and info.value.__cause__ is None  # no chained traceback
    assert visible_files(cache) == []


def test_timeout_is_reported(cache):
    srv = Server(mirror_files("slow"), delay=0.6)
    try:
        with pytest.raises(DataUnavailableError, match=r"slow/train-images-idx3-ubyte.gz \(timed out after 0.2 s\)"):
            load_mnist(mirrors=[srv.url("slow")], progress=False, timeout=0.2)
    finally:
        srv.close()


def test_corrupted_cache_file_is_downloaded_again(server, cache, capsys):
    download(mirrors=[server.url("good")], progress=False)
    bad = cache / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(RAW["train-labels-idx1-ubyte"][:-1] + b"\x03"))  # valid IDX, wrong content
    requests = len(server.log)
    assert_tiny(load_mnist(mirrors=[server.url("good")], progress=False))
    assert server.log[requests:] == ["/good/train-labels-idx1-ubyte.gz"]
    assert "is corrupt (checksum mismatch); removing it and downloading it again" in capsys.readouterr().err
    assert bad.read_bytes() == GZ["train-labels-idx1-ubyte"]


def test_truncated_cache_file_is_downloaded_again(server, cache):
    download(mirrors=[server.url("good")], progress=False)
    bad = cache / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(GZ["t10k-images-idx3-ubyte"][:50])
    assert_tiny(load_mnist(mirrors=[server.url("good")], progress=False))
    assert visible_files(cache) == expected_names()


def test_corrupted_cache_file_without_download(server, cache):
    download(mirrors=[server.url("good")], progress=False)
    bad = cache / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(RAW["train-labels-idx1-ubyte"][:-1] + b"\x03"))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: expected the published mnist file "
                                        r"\(SHA-256 of the content\), found a corrupt copy; delete it"):
        load_mnist(download=False)
    assert bad.exists()  # nothing is deleted without permission to replace it


def test_partial_cache_is_completed(server, cache):
    download(mirrors=[server.url("good")], progress=False)
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataUnavailableError, match="not found"):
        load_mnist(download=False)
    assert_tiny(load_mnist(mirrors=[server.url("good")], progress=False))
    assert server.log[-1] == "/good/t10k-labels-idx1-ubyte.gz"


def test_recompressed_copy_verifies(cache):
    other = {name: gzip.compress(raw, compresslevel=1, mtime=12345) for name, raw in RAW.items()}
    assert other != GZ
    srv = Server(mirror_files("re", other))
    try:
        assert_tiny(load_mnist(mirrors=[srv.url("re")], progress=False))
    finally:
        srv.close()
    # An uncompressed copy in the cache verifies as well.
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    (cache / "t10k-labels-idx1-ubyte").write_bytes(RAW["t10k-labels-idx1-ubyte"])
    assert_tiny(load_mnist(download=False))


def test_download_into_data_dir(server, tmp_path, cache):
    target = tmp_path / "mine"
    target.mkdir()
    assert_tiny(load_mnist(target, mirrors=[server.url("good")], progress=False))
    assert visible_files(target) == expected_names()
    assert not cache.exists()


def test_interrupt_removes_temporary_file(server, cache, monkeypatch):
    def interrupted(response, out, label, progress):
        out.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module, "_copy_with_progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(mirrors=[server.url("good")], progress=False)
    assert visible_files(cache) == []


CHILD = """
import json, sys, time
from fastmlp.datasets import mnist as data
data.SHA256["mnist"].update(json.loads(sys.argv[1]))
print(time.time(), flush=True)  # when this process asks for the files
data.download("mnist", sys.argv[2], mirrors=[sys.argv[3]], progress=False)
data.load_mnist(sys.argv[2], download=False)
"""


def test_two_processes_download_once(tmp_path):
    srv = Server(mirror_files("good"), delay=0.2)  # slow enough that both processes overlap
    dest = tmp_path / "shared-cache"
    sums = json.dumps({name: hashlib.sha256(raw).hexdigest() for name, raw in RAW.items()})
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(var, None)
    try:
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, sums, str(dest), srv.url("good")], env=env,
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        srv.close()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err.decode()
    # Both processes asked while the files were still being served (else the
    # second one would simply have found a finished cache, lock or no lock).
    asked = [float(out.split()[0]) for out, _ in results]
    assert max(asked) < srv.times[-1] + srv.delay, (asked, srv.times)
    assert visible_files(dest) == expected_names()
    assert sorted(srv.log) == sorted(f"/good/{name}.gz" for name in data.IDX_FILES)  # each file fetched once
    for name in data.IDX_FILES:
        assert hashlib.sha256(gzip.decompress((dest / (name + ".gz")).read_bytes())).hexdigest() == \
            hashlib.sha256(RAW[name]).hexdigest()


def test_fallback_lock_without_fcntl(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "_fcntl", None)
    srv = Server(mirror_files("good"), delay=0.05)
    dest = tmp_path / "c"
    errors = []

    def worker():
        try:
            download("mnist", dest, mirrors=[srv.url("good")], progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        srv.close()
    assert errors == []
    assert len(srv.log) == 4
    assert visible_files(dest) == expected_names()  # the .lock.pid file is gone too


def test_unwritable_destination(server, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DataUnavailableError, match=r"cannot write the mnist files to .*a-file/sub \(.*\)\. "
                                                   r"To use mnist offline, put the four files"):
        download("mnist", tmp_path / "a-file" / "sub", mirrors=[server.url("good")], progress=False)
