"""Names and values read from a user's files, folders and arguments are quoted
escaped (``fastmlp.errors.shown``), so every message stays one line.

Each test puts a newline (and where it helps a tab or an escape character)
into the one name the message quotes: an npz member, a folder, a file name, an
environment variable, a mirror URL, an argument.  Before, each of these
messages broke over two lines.  The npz member ``y_tra\\nn.npy`` is the case
``test_fuzz_readers.py::test_fuzz_read_npz`` found.
"""

import io
import zipfile

import numpy as np
import pytest

from fastmlp.datasets import download as download_module
from fastmlp.datasets import images, mnist
from fastmlp.datasets.formats import read_csv, read_idx, read_npz
from fastmlp.errors import DataError, DataUnavailableError, shown

#: A folder name no message may print as it is.
ODD = "da\nta\tset"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no FASTMLP_DATA, and a mirror that refuses connections."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.setenv("FASTMLP_MIRRORS", "http://127.0.0.1:9/")


@pytest.fixture
def odd(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    return folder


def one_line(info, *quoted):
    """The message of ``info``, checked to be one line quoting each of ``quoted`` escaped."""
    message = str(info.value)
    assert "\n" not in message and "\t" not in message, repr(message)
    for value in quoted:
        assert shown(value) in message, (shown(value), message)
    return message


def npz_with_members(names):
    """An npz (zip) whose members are small uint8 arrays under ``names``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            member = io.BytesIO()
            np.save(member, np.zeros(3, np.uint8))
            zf.writestr(name, member.getvalue())
    return buf.getvalue()


def test_npz_member_name_with_a_newline(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(npz_with_members(["x_train.npy", "y_tra\nn.npy", "x_test.npy", "y_test.npy"]))
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert one_line(info) == (f"{path}: expected arrays x_train, y_train, x_test, y_test, "
                              "found x_test, x_train, y_test, 'y_tra\\nn' (missing y_train)")


def test_npz_in_an_odd_folder(odd):
    path = odd / "m.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError) as info:
        read_npz(path)
    one_line(info, path)
    ds = np.zeros((2, 784), np.uint8), np.zeros(2, np.uint8)
    np.savez(path, x_train=ds[0], y_train=ds[1], x_test=ds[0], y_test=np.array([1, 2, 30]))
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert one_line(info).startswith(f"{shown(str(path) + '[y_test]')}: expected labels 0-9, found 30")


def test_csv_file_name_with_a_newline(tmp_path):
    path = tmp_path / "mnist\ntrain.csv"
    path.write_text("label,p1\n1,2\n")
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert one_line(info, path).startswith(f"{shown(path)}: line 2: expected 785 comma-separated values")


def test_csv_that_cannot_be_read(odd):
    with pytest.raises(DataError) as info:
        read_csv(odd / "missing.csv")
    one_line(info, odd / "missing.csv")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_in_an_odd_folder(odd, gz):
    path = odd / "train-images-idx3-ubyte"
    path.write_bytes(b"\x1f\x8bnot gzip at all" if gz else b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(DataError) as info:
        read_idx(path)
    one_line(info, path)
    with pytest.raises(DataError) as info:
        read_idx(odd / "missing")
    one_line(info, odd / "missing")


def tiny_idx_set(folder, n_labels=3):
    """The four IDX files of 3 images each (``n_labels`` training labels)."""
    def idx(array, code=0x08):
        dims = b"".join(d.to_bytes(4, "big") for d in array.shape)
        return bytes([0, 0, code, array.ndim]) + dims + array.tobytes()

    images = idx(np.zeros((3, 28, 28), np.uint8))
    for name, blob in zip(mnist.IDX_FILES, [images, idx(np.ones(n_labels, np.uint8)), images,
                                            idx(np.ones(3, np.uint8))]):
        (folder / name).write_bytes(blob)


def test_load_mnist_odd_data_dir(odd):
    with pytest.raises(DataError) as info:
        mnist.load_mnist(odd / "nowhere", download=False)
    one_line(info, odd / "nowhere")
    tiny_idx_set(odd, n_labels=4)
    with pytest.raises(DataError) as info:
        mnist.load_mnist(odd, download=False)
    assert one_line(info, odd / "train-images-idx3-ubyte").endswith("expected the same count")
    (odd / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        mnist.load_mnist(odd, download=False)
    assert one_line(info, odd).startswith(f"{shown(odd)}: expected all four IDX files, found 3")


def test_load_mnist_odd_fastmlp_data(odd, monkeypatch):
    monkeypatch.setenv("FASTMLP_DATA", str(odd / "ty\npo"))
    with pytest.raises(DataError) as info:
        mnist.load_mnist(download=False)
    assert one_line(info, odd / "ty\npo").startswith("FASTMLP_DATA=")


def test_load_mnist_odd_cache_folder(odd, monkeypatch):
    """Nothing found: the paragraph naming every folder looked in and where
    to put the files, one line; then a corrupt cached file, named escaped."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(odd))
    cache = odd / "fastmlp" / "mnist"
    with pytest.raises(DataUnavailableError) as info:
        mnist.load_mnist(download=False)
    one_line(info, cache)
    cache.mkdir(parents=True)
    tiny_idx_set(cache)  # not the published files: their checksums fail
    with pytest.raises(DataError) as info:
        mnist.load_mnist(download=False)
    assert "expected the published mnist files" in one_line(info, cache / "train-images-idx3-ubyte")


def test_unknown_dataset_argument():
    with pytest.raises(DataError) as info:
        mnist.load_mnist(dataset="mn\nist")
    assert one_line(info) == "unknown dataset 'mn\\nist': expected one of mnist, fashion-mnist"


def test_download_odd_mirror_and_folder(odd):
    """A mirror URL holding a newline (refused by urllib before any connection)
    and the folder to put the files in, both escaped."""
    with pytest.raises(DataUnavailableError) as info:
        download_module.download("mnist", odd / "d", mirrors=["http://127.0.0.1:9/x\ny/"], progress=False)
    one_line(info, "http://127.0.0.1:9/x\ny/train-images-idx3-ubyte.gz", odd / "d")


def test_download_into_an_unwritable_odd_folder(odd):
    blocker = odd / "file"
    blocker.write_text("")  # a file where the folder should be: mkdir fails
    with pytest.raises(DataUnavailableError) as info:
        download_module.download("mnist", blocker / "d", progress=False)
    one_line(info, blocker / "d")


def test_content_checksum_of_an_odd_file(odd):
    path = odd / "f.gz"
    path.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError) as info:
        download_module._content_sha256(path)
    one_line(info, path)


# --- fastmlp predict's images: names printed one per line, errors one line --------------

def test_image_names_escaped_one_per_line(odd):
    """``Images.names`` label the lines ``fastmlp predict`` prints: a path with
    a newline or a tab would split or shift them."""
    one = odd / "one.npy"
    np.save(one, np.zeros((28, 28), np.uint8))
    assert images.read_images(one).names == [shown(one)]
    many = odd / "many.npy"
    np.save(many, np.zeros((2, 784), np.uint8))
    assert images.read_images(many).names == [f"{shown(many)}[0]", f"{shown(many)}[1]"]
    assert all("\n" not in name and "\t" not in name for name in images.read_images(many).names)


@pytest.mark.parametrize("name,content", [
    ("missing.png", None),
    ("a.npy", np.zeros((3, 5), np.uint8)),  # wrong shape
    ("b.npy", np.full((1, 784), 2.0)),  # floats beyond 0..1
    ("c.npy", np.array([["x"] * 784])),  # not numbers
    ("d.npy", b"not an npy file"),
    ("e.idx", np.zeros(4, np.float32)),  # an IDX file that is not uint8 images
])
def test_image_errors_one_line(odd, name, content):
    path = odd / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith(".idx"):
        path.write_bytes(bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + content.astype(">f4").tobytes())
    elif content is not None:
        np.save(path, content)
    with pytest.raises(DataError) as info:
        images.read_images(path)
    assert one_line(info, path).startswith(shown(path) + ":")


def test_image_file_errors_one_line(odd):
    pytest.importorskip("PIL")
    path = odd / "garbage.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError) as info:
        images.read_images(path)
    assert "cannot read the image" in one_line(info, path)
