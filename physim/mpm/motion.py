"""Kinematic collider motion in torch: per-substep poses and velocities from the actions.

Kept in torch so that gradients of the contact response reach the actions.
"""

from __future__ import annotations

import torch

__all__ = ["quat_mul", "substep_poses"]


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of quaternions (x, y, z, w), shapes (..., 4)."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        dim=-1,
    )


def substep_poses(pose: torch.Tensor, lin: torch.Tensor, ang: torch.Tensor, dt: float, substeps: int,
                  target_quat: torch.Tensor | None = None):
    """Collider records of each substep and the pose after the step.

    Args:
        pose: Poses at the start of the step, (K, 7): position [m], quaternion (x, y, z, w).
        lin: Linear velocities [m/s], (K, 3).
        ang: Angular velocities [rad/s], (K, 3).
        dt: Substep length [s].
        substeps: Substeps in the step.
        target_quat: In pose mode, the orientations to reach at the end of the step (K, 4);
            orientations are then interpolated (normalised lerp) instead of integrated.

    Returns:
        (records, pose_end): records (substeps, K, 13) = position, quaternion, linear and
        angular velocity at the start of each substep; pose_end (K, 7).
    """
    p, q = pose[:, :3], pose[:, 3:]
    rows = []
    for s in range(substeps + 1):
        if target_quat is not None:
            a = s / substeps
            qs = (1 - a) * q + a * target_quat
            qs = qs / qs.norm(dim=-1, keepdim=True)
        else:
            qs = q
        ps = p + (s * dt) * lin
        if s == substeps:
            return torch.stack(rows), torch.cat([ps, qs], dim=-1)
        rows.append(torch.cat([ps, qs, lin, ang], dim=-1))
        if target_quat is None:
            # first-order quaternion integration, renormalised (differentiable at ω = 0)
            omega = torch.cat([ang, torch.zeros_like(ang[:, :1])], dim=-1)
            q = q + 0.5 * dt * quat_mul(omega, q)
            q = q / q.norm(dim=-1, keepdim=True)
    raise AssertionError("unreachable")  # pragma: no cover
