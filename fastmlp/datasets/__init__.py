"""Data sets: :func:`load_mnist` (MNIST and Fashion-MNIST), the file formats
it reads, the download, and images given to ``fastmlp predict``.

:mod:`~fastmlp.datasets.registry` names the data sets, their checksums,
mirrors and cache folder; :mod:`~fastmlp.datasets.mnist` finds and loads them;
:mod:`~fastmlp.datasets.formats` reads IDX, CSV and ``.npz`` files;
:mod:`~fastmlp.datasets.download` fetches and verifies them (``download``);
:mod:`~fastmlp.datasets.images` reads pictures and arrays to predict on.
"""

from fastmlp.datasets.formats import (IDX_FILES, Dataset, read_csv, read_idx, read_idx_images,
                                      read_idx_labels, read_npz)
from fastmlp.datasets.mnist import load_mnist
from fastmlp.datasets.registry import DATASETS, MIRRORS, SHA256, cache_dir

__all__ = ["DATASETS", "IDX_FILES", "MIRRORS", "SHA256", "Dataset", "cache_dir", "load_mnist",
           "read_csv", "read_idx", "read_idx_images", "read_idx_labels", "read_npz"]
