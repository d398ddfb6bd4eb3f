"""Data-parallel training on the one engine PyTorch has: torchrun + DistributedDataParallel.

    torchrun --nproc_per_node 2 -m training confidence --dataset h36m:DATA -o RUN

`setup()` reads what torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), starts the process group
(NCCL on CUDA, gloo on the CPU) and returns this process's place; without torchrun it is a
world of one and nothing is started.

Batches (`batch_positions`): every step has one *global* batch of frame sets, drawn from a
seeded permutation of the dataset per epoch; rank r takes the r-th contiguous slice of it.
torch's DistributedSampler instead deals indices round-robin from one permutation, so which
samples meet in a batch depends on the number of processes; here the global batch is the same
for 1 or N processes, every loss is a mean over the samples of a slice, and DDP averages the
slices' gradients, so N processes follow a single process's loss curve (up to float
summation order). Random augmentation is seeded per (seed, step, position in the global
batch) for the same reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from calibration.errors import TriangulumError


@dataclass(frozen=True)
class Place:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> Place:
    """Join torchrun's process group (module docstring); a world of one without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Place()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Place(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def batch_positions(step: int, size: int, batch: int, seed: int) -> np.ndarray:
    """The global batch of `step`: (batch,) dataset indices, epoch after epoch of seeded
    permutations of range(size) (the last batch of an epoch runs into the next)."""
    out, start = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), size)
        order = np.random.default_rng([seed, epoch]).permutation(size)
        out.extend(order[offset:offset + batch - len(out)].tolist())
    return np.asarray(out)


def shard(positions: np.ndarray, place: Place) -> slice:
    """This rank's contiguous slice of a global batch (its size must divide by the world)."""
    n = len(positions)
    if n % place.world:
        raise TriangulumError(f"a batch of {n} does not split over {place.world} processes; give --batch a multiple "
                              f"of {place.world}.")
    per = n // place.world
    return slice(place.rank * per, (place.rank + 1) * per)


def mean_over_ranks(value: float, place: Place) -> float:
    """The mean of a scalar over every process (the loss the curve shows)."""
    if place.world == 1:
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t[0]) / place.world


def barrier(place: Place) -> None:
    if place.world > 1:
        dist.barrier()
