"""Shared pieces of the learned particle simulators (GNS, GIOROM): the HDF5 trajectory
format, training windows, GNS input features and normalisation, message-passing layers,
sparse-particle sampling, training and evaluation helpers."""

from .dataset import (
    FORMAT,
    FORMAT_VERSION,
    MATERIALS,
    DatasetFileError,
    LagrangianFile,
    Trajectory,
    load_split,
    read_trajectories,
    write_trajectories,
)
from .model import LagrangianModel
from .sampling import farthest_point_sampling, sample_particles
from .windows import WindowDataset, collate_windows

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MATERIALS",
    "DatasetFileError",
    "LagrangianFile",
    "LagrangianModel",
    "Trajectory",
    "WindowDataset",
    "collate_windows",
    "farthest_point_sampling",
    "load_split",
    "read_trajectories",
    "sample_particles",
    "write_trajectories",
]
