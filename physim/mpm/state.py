"""The state of an MPM scene: particles and colliders, as torch tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["State"]


@dataclass(frozen=True)
class State:
    """Everything that evolves, for N particles in dimension d and K colliders.

    Attributes:
        x: Particle positions [m], shape (N, d).
        v: Particle velocities [m/s], shape (N, d).
        C: APIC affine velocity field (≈ velocity gradient) [1/s], shape (N, d, d).
        F: Deformation gradients (elastic part for plastic laws), shape (N, d, d).
        collider_pose: Collider positions [m] and unit quaternions (x, y, z, w), shape (K, 7).
        collider_force: Contact force on each collider [N], mean over the last step, shape (K, 3).
        collider_torque: Contact torque about each collider's position [N·m], mean over the last
            step, shape (K, 3).
        time: Simulated time [s], shape (), float64.
    """

    x: torch.Tensor
    v: torch.Tensor
    C: torch.Tensor
    F: torch.Tensor
    collider_pose: torch.Tensor
    collider_force: torch.Tensor
    collider_torque: torch.Tensor
    time: torch.Tensor

    @property
    def particle_count(self) -> int:
        return int(self.x.shape[0])
