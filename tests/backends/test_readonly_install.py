"""The Numba backend from a read-only install, and with a damaged kernel cache.

A copy of the ``fastmlp`` package is made read-only and imported by a child
process (``PYTHONPATH`` to the copy, ``HOME``/``XDG_CACHE_HOME`` in a temporary
folder, ``NUMBA_CACHE_DIR`` unset).  It must train with the numba backend, and
the compiled kernels must be cached under ``$XDG_CACHE_HOME/fastmlp/numba``
(``fastmlp.backends.numba.cache``).  Then the cache files are overwritten with
garbage and truncated, and the run must still succeed.

Root ignores write permission bits, and these tests often run as root.  The
child then runs under ``setpriv`` with ``CAP_DAC_OVERRIDE`` and
``CAP_DAC_READ_SEARCH`` removed from its capability bounding set: still uid 0
(so it can reach the interpreter under a private ``/root``), but bound by the
permission bits like any user.  A probe checks that a write into the read-only
copy really fails; without a way to make it fail the tests skip, saying why.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")

SCRIPT = r"""
import sys
import numpy as np
import fastmlp
from fastmlp import MLP
from fastmlp.backends.numba import cache as _numba_cache

assert fastmlp.__file__.startswith(sys.argv[1]), fastmlp.__file__  # the read-only copy
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (120, 784), dtype=np.uint8)
y = rng.integers(0, 10, 120).astype(np.uint8)
model = MLP([784, 16, 10], backend="numba", seed=0).fit(X, y, epochs=1, batch_size=10, learning_rate=1.0)
assert np.isfinite(model.predict_proba(X)).all()
print("CACHE_OK", _numba_cache.persistent())
print("OK")
"""


def drop_write_override():
    """The command prefix that makes the child obey permission bits, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    return None


def make_read_only(root):
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)


def make_writable(root):
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """A read-only copy of the package and the runner for the child process."""
    prefix = drop_write_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only for the child")
    root = tmp_path_factory.mktemp("readonly-install")
    site = root / "site"
    shutil.copytree(REPO / "fastmlp", site / "fastmlp", ignore=shutil.ignore_patterns("__pycache__"))
    make_read_only(site)
    home = root / "home"
    home.mkdir()

    probe = subprocess.run([*prefix, sys.executable, "-c",
                            f"open({str(site / 'fastmlp' / 'probe')!r}, 'w')"], capture_output=True)
    if probe.returncode == 0:
        make_writable(site)
        pytest.skip("cannot emulate a read-only install here: a write into a 0o555 folder succeeded")

    def run(xdg=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "PYTHON"))}
        env.update(HOME=str(home), XDG_CACHE_HOME=str(xdg or home / "xdg-cache"), PYTHONPATH=str(site),
                   PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([*prefix, sys.executable, "-c", SCRIPT, str(site)], capture_output=True,
                              text=True, env=env, cwd=root, timeout=900)

    yield {"site": site, "home": home, "cache": home / "xdg-cache" / "fastmlp" / "numba", "run": run}
    make_writable(site)


def cache_files(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_read_only_install_caches_kernels_in_the_user_cache(install):
    result = install["run"]()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["CACHE_OK True", "OK"]
    files = cache_files(install["cache"])
    assert any(p.suffix == ".nbi" for p in files) and any(p.suffix == ".nbc" for p in files), files
    # nothing was written into the installed package
    assert not list(install["site"].rglob("__pycache__"))


def test_corrupt_cache_entries_do_not_crash_the_run(install):
    if not cache_files(install["cache"]):
        assert install["run"]().returncode == 0
    files = cache_files(install["cache"])
    assert files
    for i, path in enumerate(files):
        # garbage for some, truncation for others; index (.nbi) and data (.nbc) alike
        path.write_bytes(b"\x80\x04garbage" * (i % 3) if i % 2 else path.read_bytes()[:7])
    result = install["run"]()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "OK"
    assert "Traceback" not in result.stderr


def test_no_writable_cache_location_runs_without_a_cache(install, tmp_path):
    xdg = tmp_path / "readonly-xdg"
    xdg.mkdir()
    os.chmod(xdg, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        result = install["run"](xdg=xdg)
    finally:
        os.chmod(xdg, 0o755)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["CACHE_OK False", "OK"]
    assert not cache_files(xdg)
