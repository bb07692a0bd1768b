"""Property tests: the readers return valid arrays or raise DataError, nothing else.

Inputs are random bytes and mutations of small valid files (truncations,
flipped bytes, appended garbage, forged huge dimensions). Each example runs
under ``tracemalloc`` and must stay below ``ALLOC_LIMIT``, so a reader that
allocated a size taken from a forged header fails even if the allocation
happened to succeed. The number of cases per test is printed (see ``-s`` or
``-rA``).
"""

import gzip
import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp.datasets.mnist import Dataset, load_mnist, read_csv, read_idx, read_npz
from fastmlp.errors import DataError

# Every valid input below is a few KB, so 32 MB of peak traced memory can only
# mean that a declared (forged) size was allocated.
ALLOC_LIMIT = 32 << 20
FUZZ = settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CASES = {}


def call(counter, fn, *args):
    """Run ``fn``; return its result or None on DataError; fail on anything else or a big allocation."""
    counts = CASES.setdefault(counter, [0, 0])  # [cases, of which returned arrays]
    counts[0] += 1
    tracemalloc.start()
    try:
        result = fn(*args)
        counts[1] += 1
        return result
    except DataError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"DataError must be one line: {message!r}"
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < ALLOC_LIMIT, f"{fn.__name__} allocated {peak} bytes"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    total = sum(n for n, _ in CASES.values())
    detail = ", ".join(f"{name}={n} ({ok} valid)" for name, (n, ok) in CASES.items())
    print(f"\nfuzz cases: {total}: {detail}")


def idx_bytes(array, code=0x08):
    array = np.asarray(array)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


VALID_IDX = [
    idx_bytes(np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)),
    idx_bytes(np.array([1, 2, 3, 9, 0], np.uint8)),
    idx_bytes(np.arange(12, dtype=">i4").reshape(3, 4), code=0x0C),
    idx_bytes(np.linspace(0, 1, 6).astype(">f8"), code=0x0E),
]

HUGE = st.sampled_from([2**31 - 1, 2**32 - 1, 2**31, 10**9, 60000, 0])


@st.composite
def mutated(draw, valid):
    """A valid file, then one or more of: truncate, flip a byte, forge a dim, append."""
    blob = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "flip_header", "huge_dim", "append"]))
        if kind == "truncate" and blob:
            del blob[draw(st.integers(0, len(blob) - 1)):]
        elif kind == "flip" and blob:
            i = draw(st.integers(0, len(blob) - 1))
            blob[i] ^= draw(st.integers(1, 255))
        elif kind == "flip_header" and blob:
            i = draw(st.integers(0, min(len(blob), 16) - 1))
            blob[i] = draw(st.integers(0, 255))
        elif kind == "huge_dim" and len(blob) >= 8:
            ndim = max(1, min(blob[3], (len(blob) - 4) // 4))
            i = 4 + 4 * draw(st.integers(0, ndim - 1))
            blob[i:i + 4] = struct.pack(">I", draw(HUGE))
        elif kind == "append":
            blob += draw(st.binary(min_size=1, max_size=20))
    return bytes(blob)


def maybe_gzip(gz, blob, level):
    return gzip.compress(blob, compresslevel=level, mtime=0) if gz else blob


def check_idx_result(result):
    if result is not None:
        assert isinstance(result, np.ndarray) and result.dtype.isnative and result.flags.c_contiguous


@FUZZ
@given(blob=st.one_of(st.binary(max_size=64), mutated(VALID_IDX)), gz=st.booleans(), level=st.integers(1, 9),
       cut_gzip=st.integers(0, 40))
def test_fuzz_read_idx(tmp_path, blob, gz, level, cut_gzip):
    payload = maybe_gzip(gz, blob, level)
    if gz and cut_gzip:  # also damage the compressed stream itself
        payload = payload[:-cut_gzip]
    path = tmp_path / "f.idx"
    path.write_bytes(payload)
    check_idx_result(call("read_idx", read_idx, path))


@FUZZ
@given(dims=st.lists(HUGE, min_size=1, max_size=4), body=st.binary(max_size=64), gz=st.booleans())
def test_fuzz_read_idx_forged_dims(tmp_path, dims, body, gz):
    blob = bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + body
    path = tmp_path / "f.idx"
    path.write_bytes(maybe_gzip(gz, blob, 6))
    result = call("read_idx_forged", read_idx, path)
    check_idx_result(result)
    if result is not None:
        assert result.shape == tuple(dims)


def csv_text(n=3, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.integers(0, 256, (n, 784)), rng.integers(0, 10, n)
    header = "label," + ",".join(f"p{i}" for i in range(784))
    return "\n".join([header] + [",".join(map(str, [label, *row])) for row, label in zip(X, y)]) + "\n"


VALID_CSV = csv_text().encode()
CSV_ALPHABET = st.sampled_from(list(b"0123456789,,,\n\r -+.ax#\"\xff\t"))


@st.composite
def csv_mutation(draw):
    blob = bytearray(VALID_CSV)
    for _ in range(draw(st.integers(1, 4))):
        if not blob:
            break
        i = draw(st.integers(0, len(blob) - 1))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if kind == "insert":
            blob[i:i] = bytes(draw(st.lists(CSV_ALPHABET, min_size=1, max_size=5)))
        elif kind == "delete":
            del blob[i:i + draw(st.integers(1, 10))]
        elif kind == "replace":
            blob[i] = draw(CSV_ALPHABET)
        else:
            del blob[i:]
    return bytes(blob)


@FUZZ
@given(blob=st.one_of(st.binary(max_size=200), st.lists(CSV_ALPHABET, max_size=200).map(bytes), csv_mutation()))
def test_fuzz_read_csv(tmp_path, blob):
    path = tmp_path / "f.csv"
    path.write_bytes(blob)
    result = call("read_csv", read_csv, path)
    if result is not None:
        X, y = result
        assert X.dtype == np.uint8 and X.ndim == 2 and X.shape[1] == 784 and X.flags.c_contiguous
        assert y.dtype == np.uint8 and y.shape == (len(X),) and (y <= 9).all()


def npz_bytes(arrays, compressed):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def small_arrays(square=True):
    rng = np.random.default_rng(1)
    shape = (-1, 28, 28) if square else (-1, 784)
    return {"x_train": rng.integers(0, 256, (4, 784), dtype=np.uint8).reshape(shape),
            "y_train": rng.integers(0, 10, 4, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (2, 784), dtype=np.uint8).reshape(shape),
            "y_test": rng.integers(0, 10, 2).astype(np.int64)}


VALID_NPZ = [npz_bytes(small_arrays(sq), c) for sq in (True, False) for c in (True, False)]


@st.composite
def npz_variants(draw):
    """npz files built from odd arrays: wrong dtypes/shapes, objects, missing keys."""
    arrays = small_arrays(draw(st.booleans()))
    key = draw(st.sampled_from(sorted(arrays)))
    change = draw(st.sampled_from(["drop", "object", "float", "shape", "labels", "none", "fortran", "bool"]))
    if change == "drop":
        del arrays[key]
    elif change == "object":
        arrays[key] = np.array(list(arrays[key].ravel()), dtype=object)
    elif change == "float":
        arrays[key] = arrays[key].astype(np.float32)
    elif change == "shape":
        arrays[key] = arrays[key].reshape(-1)[: draw(st.integers(0, 20))]
    elif change == "labels":
        arrays[key] = arrays[key].astype(np.int16) - draw(st.integers(-300, 300))
    elif change == "fortran":
        arrays[key] = np.asfortranarray(arrays[key])
    elif change == "bool":
        arrays[key] = arrays[key].astype(bool)
    return npz_bytes(arrays, draw(st.booleans()))


def forged_npy_member():
    """A zip whose x_train.npy header declares a huge shape over a tiny body."""
    zbuf = io.BytesIO()
    arrays = small_arrays()
    with zipfile.ZipFile(zbuf, "w") as zf:
        for key, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, array)
            raw = buf.getvalue()
            if key == "x_train":
                raw = raw.replace(b"(4, 28, 28)", b"(2147483647, 28, 28)")
            zf.writestr(key + ".npy", raw)
    return zbuf.getvalue()


@FUZZ
@given(blob=st.one_of(st.binary(max_size=300), mutated(VALID_NPZ), npz_variants(), st.just(forged_npy_member())))
def test_fuzz_read_npz(tmp_path, blob):
    path = tmp_path / "f.npz"
    path.write_bytes(blob)
    result = call("read_npz", read_npz, path)
    if result is not None:
        assert isinstance(result, Dataset)
        for X, y in ((result.X_train, result.y_train), (result.X_test, result.y_test)):
            assert X.dtype == np.uint8 and X.shape == (len(y), 784) and X.flags.c_contiguous
            assert y.dtype == np.uint8 and (y <= 9).all()


LABELS = idx_bytes(np.array([1, 2, 3], np.uint8))
IMAGES = idx_bytes(np.zeros((3, 28, 28), np.uint8))
VALID_SET = {"train-images-idx3-ubyte": IMAGES, "train-labels-idx1-ubyte": LABELS,
             "t10k-images-idx3-ubyte": IMAGES, "t10k-labels-idx1-ubyte": LABELS}


@FUZZ
@given(which=st.sampled_from(sorted(VALID_SET)), blob=st.one_of(mutated([IMAGES, LABELS]), st.binary(max_size=40)),
       gz=st.booleans())
def test_fuzz_load_mnist_folder(tmp_path, monkeypatch, which, blob, gz):
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    for name, good in VALID_SET.items():
        (folder / name).write_bytes(maybe_gzip(gz, blob, 6) if name == which else good)
    result = call("load_mnist", lambda: load_mnist(folder, download=False))
    if result is not None:
        assert result.X_train.shape == (len(result.y_train), 784)
        assert result.X_test.shape == (len(result.y_test), 784)


def test_fuzz_never_swallows_other_errors(tmp_path):
    # The harness itself: a non-DataError must propagate, not count as a pass.
    with pytest.raises(ZeroDivisionError):
        call("harness", lambda: 1 / 0)
    # And a big allocation is caught (the guard against allocating forged sizes).
    with pytest.raises(AssertionError, match="allocated"):
        call("harness", lambda: np.ones(ALLOC_LIMIT, np.uint8))
