"""Data: datasets, mini-batch loading, toy sets, handwritten digits and MNIST.

PyTorch's ``torch.utils.data`` names (``Dataset``, ``TensorDataset``, ``DataLoader``,
``random_split``, samplers, ``default_collate``) plus built-in datasets::

    from backprop.data import DataLoader, TensorDataset, spiral
    loader = DataLoader(TensorDataset(*spiral()), batch_size=32, shuffle=True)
"""
from backprop.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
    train_test_split,
)
from backprop.data.digits import load_digits
from backprop.data.loader import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
)
from backprop.data.mnist import (
    MNIST,
    DownloadError,
    FashionMNIST,
    IDXFormatError,
    download_file,
    read_idx,
    write_idx,
)
from backprop.data.stream import BatchStream
from backprop.data.toy import (
    TOY_DATASETS,
    TOY_TASKS,
    blobs,
    bumps,
    circles,
    load_toy,
    moons,
    plane,
    sine,
    spiral,
    xor,
)

__all__ = [
    "BatchSampler", "BatchStream", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
    "DownloadError",
    "FashionMNIST", "IDXFormatError", "IterableDataset", "MNIST", "RandomSampler", "Sampler",
    "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler", "TOY_DATASETS",
    "TOY_TASKS", "TensorDataset", "WeightedRandomSampler", "blobs", "bumps", "circles",
    "default_collate", "default_convert", "download_file", "get_worker_info", "load_digits",
    "load_toy", "moons", "plane", "random_split", "read_idx", "sine", "spiral",
    "train_test_split", "write_idx", "xor",
]
