"""Installs vssl: self-supervised video representation learning (CPU + GPU stages)."""
from setuptools import find_packages, setup

setup(
    name="vssl",
    version="0.1.0",
    description="Self-supervised video representation learning toolkit",
    python_requires=">=3.10",
    packages=find_packages(include=["common*", "preprocess*", "labels*", "train*", "eval*", "commands*"]),
    py_modules=["cli"],
    install_requires=[
        "opencv-contrib-python-headless",
        "numpy",
        "scipy",
        "scikit-learn",
        "h5py",
        "dask[distributed]",
        "dask-jobqueue",
        "click",
        "pyyaml",
        "torch==2.13.0",
        "threadpoolctl",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "hdf5plugin",
        "zstandard",
        "faiss-cpu",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["vssl=cli:main"]},
)
