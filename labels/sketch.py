"""Count sketch (Charikar et al. 2002): a fixed random projection of long vectors to a few thousand dimensions.

Input dimension i is added, with sign ``signs[i]`` (+1 or -1), to output bucket ``buckets[i]``. As in the
public Video LA code, the buckets are consecutive random permutations of the output indices cut to the
input length (so bucket sizes differ by at most one) and the signs are an equal number of +1 and -1 in a
random order; both come from a seed and are stored, so every video is sketched by the same projection.
Sketching is linear and ``E[<Sx, Sy>] = <x, y>`` up to a term of order 1/D (docs/FISHER.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

SKETCH_DIM = 2000


@dataclass(frozen=True)
class CountSketch:
    """A stored count-sketch projection from ``len(buckets)`` to ``out_dim`` dimensions.

    Attributes:
        buckets: int64 [D], the output index of each input dimension, in ``[0, out_dim)``.
        signs: int8 [D], +1 or -1.
        out_dim: number of output dimensions.
    """

    buckets: np.ndarray
    signs: np.ndarray
    out_dim: int

    @property
    def in_dim(self) -> int:
        return self.buckets.shape[0]

    @classmethod
    def create(cls, in_dim: int, out_dim: int = SKETCH_DIM, seed: int = 0) -> CountSketch:
        """A balanced sketch from ``in_dim`` to ``out_dim`` dimensions drawn from ``seed``."""
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"dimensions must be positive, got in_dim={in_dim}, out_dim={out_dim}")
        rng = np.random.default_rng(seed)
        n_permutations = -(-in_dim // out_dim)
        buckets = np.concatenate([rng.permutation(out_dim) for _ in range(n_permutations)])[:in_dim]
        signs = rng.permutation(np.resize(np.array([-1, 1], dtype=np.int8), in_dim))
        return cls(buckets.astype(np.int64), signs, out_dim)

    def matrix(self) -> scipy.sparse.csr_matrix:
        """The projection as a sparse float64 [D, out_dim] matrix with one +-1 per row."""
        rows = np.arange(self.in_dim)
        return scipy.sparse.csr_matrix((self.signs.astype(np.float64), (rows, self.buckets)),
                                       shape=(self.in_dim, self.out_dim))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Sketch float [N, D] (or one vector [D]) in float64 -> float32 [N, out_dim] (or [out_dim])."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.in_dim or x.ndim not in (1, 2):
            raise ValueError(f"expected [N, {self.in_dim}] or [{self.in_dim}], got {x.shape}")
        sketched = np.asarray(self.matrix().T @ np.atleast_2d(x).T).T
        return sketched.astype(np.float32).reshape(*x.shape[:-1], self.out_dim)

    def save(self, path: str | Path) -> None:
        """Write buckets, signs and out_dim to an .npz of plain arrays."""
        np.savez(path, buckets=self.buckets, signs=self.signs, out_dim=np.array(self.out_dim))

    @classmethod
    def load(cls, path: str | Path) -> CountSketch:
        """Read a sketch written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as arrays:
            return cls(arrays["buckets"], arrays["signs"], int(arrays["out_dim"]))
