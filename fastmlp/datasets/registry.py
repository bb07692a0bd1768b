"""The registry of data sets: their names, file names, checksums, download
mirrors and the per-user cache folder.  Loading (:mod:`fastmlp.datasets.mnist`)
and downloading (:mod:`fastmlp.datasets.download`) both read it."""

from pathlib import Path

from fastmlp._files import user_cache_root
from fastmlp.errors import DataError, shown

DATASETS = ("mnist", "fashion-mnist")

CSV_FILES = {
    "mnist": ("mnist_train.csv", "mnist_test.csv"),
    "fashion-mnist": ("fashion-mnist_train.csv", "fashion-mnist_test.csv"),
}
NPZ_FILES = {"mnist": "mnist.npz", "fashion-mnist": "fashion-mnist.npz"}


def check_dataset(dataset):
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {shown(dataset)}: expected one of {', '.join(DATASETS)}")


def cache_dir(dataset="mnist") -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/fastmlp/<dataset>`` or ``~/.cache/...``."""
    check_dataset(dataset)
    return user_cache_root() / dataset


#: Base URLs tried in order; each file is fetched as ``<base><name>.gz``.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

#: SHA-256 of the DECOMPRESSED files, so a copy gzipped at another level (or
#: not gzipped at all) still verifies.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
