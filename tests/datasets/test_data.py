"""Tests for fastmlp.datasets.mnist: parsing, validation messages and the search order.

Every test writes its own tiny files under ``tmp_path``; only the test marked
``mnist`` reads the real data set (through the ``mnist`` fixture of conftest).
No test touches the network: ``FASTMLP_MIRRORS`` points at a closed port.
"""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from fastmlp.datasets import mnist as data
from fastmlp.datasets import formats
from fastmlp.datasets.mnist import Dataset, load_mnist, read_csv, read_idx, read_idx_images, read_idx_labels, read_npz
from fastmlp.errors import DataError, DataUnavailableError

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array, dims=None, code=None):
    """The IDX encoding of ``array`` (big-endian), optionally with a forged header."""
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    dims = array.shape if dims is None else dims
    code = IDX_CODES[big] if code is None else code
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.astype(big).tobytes()


def write_idx(path, array, gz=False, **kw):
    raw = idx_bytes(array, **kw)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def tiny_dataset(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 256, (n_train, 784), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
                   rng.integers(0, 256, (n_test, 784), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))


def write_idx_set(folder, ds, gz=True):
    """Write ``ds`` as the four IDX files (images as (n, 28, 28)) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for name, array in zip(data.IDX_FILES, ds):
        if array.ndim == 2:
            array = array.reshape(-1, 28, 28)
        write_idx(folder / (name + suffix), array, gz=gz)
    return folder


def csv_text(X, y, header=True):
    lines = ["label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))] if header else []
    lines += [",".join(map(str, [int(label), *row])) for row, label in zip(X, y)]
    return "\n".join(lines) + "\n"


def assert_same(a, b):
    assert isinstance(a, Dataset)
    for got, want in zip(a, b):
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no FASTMLP_DATA, and a mirror that refuses connections."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.setenv("FASTMLP_MIRRORS", "http://127.0.0.1:9/")


# --------------------------------------------------------------------------- #
# read_idx
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip_uint8(tmp_path, gz):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    got = read_idx(write_idx(tmp_path / "f", images, gz=gz))
    assert got.shape == (2, 28, 28) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    got[0, 0, 0] = 1  # writable: callers may normalise or shuffle in place


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f4", "f8"])
def test_read_idx_other_types_come_back_native(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    got = read_idx(write_idx(tmp_path / "f", array))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_read_idx_gzip_detected_by_content_not_name(tmp_path):
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain-name", labels, gz=True)), labels)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "raw.gz", labels, gz=False)), labels)


def test_read_idx_images_and_labels_helpers(tmp_path):
    ds = tiny_dataset()
    write_idx_set(tmp_path, ds)
    X = read_idx_images(tmp_path / "train-images-idx3-ubyte.gz")
    assert X.shape == (12, 784) and X.flags.c_contiguous
    np.testing.assert_array_equal(X, ds.X_train)
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "train-labels-idx1-ubyte.gz"), ds.y_train)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\x08\x03\x00\x00" + bytes(8))
    with pytest.raises(DataError, match=r"f: expected IDX magic 00 00 .* found 08 03 00 00"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = write_idx(tmp_path / "f", np.zeros(3, np.uint8), code=0x0A)
    with pytest.raises(DataError, match="expected IDX magic.*found 00 00 0a 01"):
        read_idx(path)


def test_read_idx_zero_dimensions(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\x00\x00\x08\x00\x05")
    with pytest.raises(DataError, match="expected 1 to 16 dimensions.*found 0"):
        read_idx(path)


def test_read_idx_short_header(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="found only 2 bytes"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(DataError, match="expected 3 dimension sizes.*truncated header"):
        read_idx(path)


def test_read_idx_truncated_raw(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-10])
    with pytest.raises(DataError, match=r"f: expected 1584 bytes for shape \(2, 28, 28\) .* found 1574 bytes \(truncated file\)"):
        read_idx(path)


def test_read_idx_trailing_garbage_raw(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"junk")
    with pytest.raises(DataError, match=r"expected 13 bytes .* found 17 bytes \(trailing garbage\)"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8))[:-1]))
    with pytest.raises(DataError, match=r"expected 100 bytes of uint8 data .* found only 99 \(truncated file\)"):
        read_idx(path)


def test_read_idx_trailing_garbage_gzip(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)) + b"x"))
    with pytest.raises(DataError, match=r"more data after them \(trailing garbage\)"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_huge_declared_size_rejected_before_reading(tmp_path, gz, monkeypatch):
    # 2**31-1 images of 28x28 would be 1.6 TB: the size check must fire before
    # any read, so a reader that allocated the declared size would fail here.
    path = write_idx(tmp_path / "f", np.zeros((1, 28, 28), np.uint8), gz=gz, dims=(2**31 - 1, 28, 28))
    calls = []
    monkeypatch.setattr(formats, "_read_exactly", lambda *a, **k: calls.append(a))
    with pytest.raises(DataError, match="truncated" if not gz else "at most .* bytes inside a .*gzip file"):
        read_idx(path)
    assert calls == []


def test_read_idx_gzip_declaring_more_than_it_holds(tmp_path):
    # Plausible for the compression ratio, so only the limited read catches it.
    path = write_idx(tmp_path / "f", np.zeros(1000, np.uint8), gz=True, dims=(5000,))
    with pytest.raises(DataError, match=r"expected 5000 bytes .* found only 1000 \(truncated file\)"):
        read_idx(path)


def test_read_idx_corrupt_gzip_stream(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), mtime=0)
    path = tmp_path / "f.gz"
    path.write_bytes(good[:12] + bytes(b ^ 0x5A for b in good[12:-8]) + good[-8:])
    with pytest.raises(DataError, match=r"f.gz: expected a valid gzip stream, found a corrupt one"):
        read_idx(path)
    path.write_bytes(good[: len(good) // 2])  # cut inside the deflate stream
    with pytest.raises(DataError, match="f.gz: expected"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope: cannot open"):
        read_idx(tmp_path / "nope")


def test_read_idx_zero_count_with_absurd_other_dims(tmp_path):
    path = write_idx(tmp_path / "f", np.zeros(0, np.uint8), dims=(0, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DataError, match="expected dimensions numpy can represent"):
        read_idx(path)


def test_read_idx_images_wrong_shape(tmp_path):
    path = write_idx(tmp_path / "imgs", np.zeros((2, 28, 27), np.uint8))
    with pytest.raises(DataError, match=r"imgs: expected images of shape \(n, 28, 28\), found shape \(2, 28, 27\)"):
        read_idx_images(path)


def test_read_idx_images_wrong_type(tmp_path):
    path = write_idx(tmp_path / "imgs", np.zeros((2, 28, 28), np.float32))
    with pytest.raises(DataError, match=r"expected uint8 pixels \(IDX type 0x08\), found float32"):
        read_idx_images(path)


def test_read_idx_labels_not_1d(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"labels: expected labels of shape \(n,\), found shape \(2, 28, 28\)"):
        read_idx_labels(path)


def test_read_idx_labels_out_of_range(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([1, 2, 12, 0, 200], np.uint8))
    with pytest.raises(DataError, match=r"expected labels 0-9, found 12 at index 2 \(2 out of range\)"):
        read_idx_labels(path)


# --------------------------------------------------------------------------- #
# read_csv
# --------------------------------------------------------------------------- #


def test_read_csv_roundtrip(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "mnist_train.csv"
    path.write_text(csv_text(ds.X_train, ds.y_train))
    X, y = read_csv(path)
    assert X.shape == (12, 784) and X.dtype == np.uint8 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, ds.X_train)
    np.testing.assert_array_equal(y, ds.y_train)


def test_read_csv_headerless_and_crlf(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "t.csv"
    path.write_bytes(csv_text(ds.X_test, ds.y_test, header=False).replace("\n", "\r\n").encode())
    X, y = read_csv(path)
    np.testing.assert_array_equal(X, ds.X_test)  # the first row was not eaten as a header
    np.testing.assert_array_equal(y, ds.y_test)


def _bad_csv(tmp_path, edit):
    ds = tiny_dataset()
    lines = csv_text(ds.X_train, ds.y_train).splitlines()
    edit(lines)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_csv_wrong_width(tmp_path):
    def edit(lines):
        lines[3] = lines[3].rsplit(",", 1)[0]

    with pytest.raises(DataError, match=r"bad.csv: line 4: expected 785 comma-separated values .* found 784"):
        read_csv(_bad_csv(tmp_path, edit))


def test_read_csv_non_numeric(tmp_path):
    def edit(lines):
        cells = lines[5].split(",")
        cells[10] = "abc"
        lines[5] = ",".join(cells)

    with pytest.raises(DataError, match=r"bad.csv: line 6, column 11: expected an integer, found 'abc'"):
        read_csv(_bad_csv(tmp_path, edit))


@pytest.mark.parametrize("value", ["256", "-1", "99999999999999999999999"])
def test_read_csv_pixel_out_of_range(tmp_path, value):
    def edit(lines):
        cells = lines[2].split(",")
        cells[100] = value
        lines[2] = ",".join(cells)

    with pytest.raises(DataError, match=rf"line 3, column 101: expected a pixel 0-255, found {value}"):
        read_csv(_bad_csv(tmp_path, edit))


def test_read_csv_label_out_of_range(tmp_path):
    def edit(lines):
        lines[7] = "10" + lines[7][lines[7].index(","):]

    with pytest.raises(DataError, match=r"line 8, column 1: expected a label 0-9, found 10"):
        read_csv(_bad_csv(tmp_path, edit))


def test_read_csv_float_cell(tmp_path):
    def edit(lines):
        lines[1] = lines[1][: lines[1].rindex(",")] + ",3.5"

    with pytest.raises(DataError, match=r"line 2, column 785: expected an integer, found '3.5'"):
        read_csv(_bad_csv(tmp_path, edit))


def test_read_csv_non_ascii(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"label,a\n1,\xff\n")
    with pytest.raises(DataError, match=r"expected an ASCII text file .* found byte 0xff on line 2"):
        read_csv(path)


def test_read_csv_header_only(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("label,1x1\n\n")
    with pytest.raises(DataError, match="empty.csv: expected rows of label \\+ 784 pixels after the header, found none"):
        read_csv(path)


# --------------------------------------------------------------------------- #
# read_npz
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("square", [True, False])
def test_read_npz_roundtrip(tmp_path, square):
    ds = tiny_dataset()
    shape = (-1, 28, 28) if square else (-1, 784)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=ds.X_train.reshape(shape), y_train=ds.y_train,
             x_test=ds.X_test.reshape(shape), y_test=ds.y_test.astype(np.int64))
    assert_same(read_npz(path), ds)


def test_read_npz_compressed_and_fortran_order(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=np.asfortranarray(ds.X_train), y_train=ds.y_train,
                        x_test=ds.X_test, y_test=ds.y_test)
    assert_same(read_npz(path), ds)


def test_read_npz_missing_keys(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "m.npz"
    np.savez(path, x_train=ds.X_train, y_train=ds.y_train)
    with pytest.raises(DataError, match=r"m.npz: expected arrays x_train, .* found x_train, y_train "
                                        r"\(missing x_test, y_test\)"):
        read_npz(path)


def test_read_npz_refuses_object_arrays(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "m.npz"
    np.savez(path, x_train=ds.X_train, y_train=np.array(list(ds.y_train), dtype=object),
             x_test=ds.X_test, y_test=ds.y_test)
    with pytest.raises(DataError, match="expected y_train as a plain numeric array, found a pickled/object array"):
        read_npz(path)


def test_read_npz_float_images(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "m.npz"
    np.savez(path, x_train=ds.X_train / 255.0, y_train=ds.y_train, x_test=ds.X_test, y_test=ds.y_test)
    with pytest.raises(DataError, match="expected x_train as an integer array, found dtype float64"):
        read_npz(path)


def test_read_npz_bad_shapes_and_counts(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "m.npz"
    np.savez(path, x_train=ds.X_train.reshape(-1, 28, 28)[:, :27], y_train=ds.y_train,
             x_test=ds.X_test, y_test=ds.y_test)
    with pytest.raises(DataError, match=r"expected x_train uint8 of shape \(n, 28, 28\) or \(n, 784\), "
                                        r"found uint8 \(12, 27, 28\)"):
        read_npz(path)
    np.savez(path, x_train=ds.X_train, y_train=ds.y_train[:-1], x_test=ds.X_test, y_test=ds.y_test)
    with pytest.raises(DataError, match=r"x_train\] has 12 images but .*y_train\] has 11 labels"):
        read_npz(path)
    np.savez(path, x_train=ds.X_train, y_train=ds.y_train + 5, x_test=ds.X_test, y_test=ds.y_test)
    with pytest.raises(DataError, match=r"y_train\]: expected labels 0-9"):
        read_npz(path)


def test_read_npz_not_a_zip(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(DataError, match=r"m.npz: expected a valid .npz \(zip\) archive, found a corrupt one"):
        read_npz(path)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataError, match="expected a valid .npz"):
        read_npz(tmp_path / "single.npy")


def test_read_npz_truncated(tmp_path):
    ds = tiny_dataset()
    path = tmp_path / "m.npz"
    np.savez(path, x_train=ds.X_train, y_train=ds.y_train, x_test=ds.X_test, y_test=ds.y_test)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="m.npz: expected a valid .npz"):
        read_npz(path)


# --------------------------------------------------------------------------- #
# load_mnist: formats and search order
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_idx_folder(tmp_path, gz):
    ds = tiny_dataset()
    assert_same(load_mnist(write_idx_set(tmp_path / "d", ds, gz=gz), download=False), ds)


def test_load_mnist_csv_folder(tmp_path):
    ds = tiny_dataset()
    (tmp_path / "mnist_train.csv").write_text(csv_text(ds.X_train, ds.y_train))
    (tmp_path / "mnist_test.csv").write_text(csv_text(ds.X_test, ds.y_test))
    assert_same(load_mnist(tmp_path, download=False), ds)


def test_load_mnist_npz_folder(tmp_path):
    ds = tiny_dataset()
    np.savez(tmp_path / "mnist.npz", x_train=ds.X_train, y_train=ds.y_train, x_test=ds.X_test, y_test=ds.y_test)
    assert_same(load_mnist(tmp_path, download=False), ds)


def test_load_mnist_prefers_idx_over_csv_and_npz(tmp_path):
    idx, other = tiny_dataset(seed=1), tiny_dataset(seed=2)
    write_idx_set(tmp_path, idx)
    (tmp_path / "mnist_train.csv").write_text(csv_text(other.X_train, other.y_train))
    (tmp_path / "mnist_test.csv").write_text(csv_text(other.X_test, other.y_test))
    np.savez(tmp_path / "mnist.npz", x_train=other.X_train, y_train=other.y_train,
             x_test=other.X_test, y_test=other.y_test)
    assert_same(load_mnist(tmp_path, download=False), idx)


def test_load_mnist_fashion_file_names(tmp_path):
    ds = tiny_dataset()
    (tmp_path / "fashion-mnist_train.csv").write_text(csv_text(ds.X_train, ds.y_train))
    (tmp_path / "fashion-mnist_test.csv").write_text(csv_text(ds.X_test, ds.y_test))
    assert_same(load_mnist(tmp_path, dataset="fashion-mnist", download=False), ds)
    np.savez(tmp_path / "sub.npz", x_train=ds.X_train, y_train=ds.y_train, x_test=ds.X_test, y_test=ds.y_test)
    (tmp_path / "f").mkdir()
    (tmp_path / "sub.npz").rename(tmp_path / "f" / "fashion-mnist.npz")
    assert_same(load_mnist(tmp_path / "f", dataset="fashion-mnist", download=False), ds)


def test_load_mnist_dataset_subfolder(tmp_path):
    ds = tiny_dataset()
    write_idx_set(tmp_path / "fashion-mnist", ds)
    assert_same(load_mnist(tmp_path, dataset="fashion-mnist", download=False), ds)


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    explicit, env, cache = tiny_dataset(3, 2, seed=1), tiny_dataset(4, 2, seed=2), tiny_dataset(5, 2, seed=3)
    write_idx_set(tmp_path / "explicit", explicit)
    write_idx_set(tmp_path / "env", env)
    write_idx_set(tmp_path / "xdg" / "fastmlp" / "mnist", cache)
    # The cache is checksum-verified: make the tiny files the "published" ones.
    for name, array in zip(data.IDX_FILES, cache):
        array = array.reshape(-1, 28, 28) if array.ndim == 2 else array
        monkeypatch.setitem(data.SHA256["mnist"], name, hashlib.sha256(idx_bytes(array)).hexdigest())
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    assert_same(load_mnist(tmp_path / "explicit", download=False), explicit)
    assert_same(load_mnist(download=False), env)
    monkeypatch.delenv("FASTMLP_DATA")
    assert_same(load_mnist(download=False), cache)
    # FASTMLP_DATA without the data set falls through to the cache.
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "empty"))
    assert_same(load_mnist(download=False), cache)


def test_fastmlp_data_holding_the_other_dataset_is_skipped(tmp_path, monkeypatch):
    ds = tiny_dataset()
    write_idx_set(tmp_path / "mnist", ds)
    labels = idx_bytes(ds.y_test)
    monkeypatch.setitem(data.SHA256["mnist"], "t10k-labels-idx1-ubyte", hashlib.sha256(labels).hexdigest())
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "mnist"))
    assert_same(load_mnist(download=False), ds)
    # Same names, but these are MNIST's files: they must not come back as Fashion-MNIST.
    with pytest.raises(DataUnavailableError, match="fashion-mnist not found"):
        load_mnist(dataset="fashion-mnist", download=False)


def test_load_mnist_unknown_dataset():
    with pytest.raises(DataError, match=r"^unknown dataset cifar: expected one of mnist, fashion-mnist$"):
        load_mnist(dataset="cifar")


def test_load_mnist_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="data folder .*nowhere does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_load_mnist_missing_fastmlp_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="FASTMLP_DATA=.*typo: expected a folder"):
        load_mnist(download=False)


def test_load_mnist_nothing_found_without_download(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "xdg" / "fastmlp" / "mnist") in message
    for name in data.IDX_FILES:
        assert name + ".gz" in message
    assert "FASTMLP_DATA" in message and "--data-dir" in message


def test_load_mnist_partial_idx_set(tmp_path):
    write_idx_set(tmp_path, tiny_dataset())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"expected all four IDX files, found 3 \(missing t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_count_mismatch(tmp_path):
    ds = tiny_dataset()
    write_idx_set(tmp_path, ds._replace(y_test=ds.y_test[:-1]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz has 5 images but .*t10k-labels-idx1-ubyte.gz "
                                        r"has 4 labels: expected the same count"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_empty_split(tmp_path):
    ds = tiny_dataset(n_test=0)
    write_idx_set(tmp_path, ds)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: expected at least one example, found none"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_bad_file_named_in_error(tmp_path):
    write_idx_set(tmp_path, tiny_dataset())
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: expected a valid gzip stream"):
        load_mnist(tmp_path, download=False)


# --------------------------------------------------------------------------- #
# The real data set
# --------------------------------------------------------------------------- #


@pytest.mark.mnist
def test_real_mnist(mnist):
    X_train, y_train, X_test, y_test = mnist
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for array in mnist:
        assert array.dtype == np.uint8 and array.flags.c_contiguous
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.mnist
def test_real_mnist_matches_published_checksums(mnist_dir):
    for name in data.IDX_FILES:
        assert data._content_sha256(data._idx_path(mnist_dir, name)) == data.SHA256["mnist"][name]
