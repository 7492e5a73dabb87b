"""Rigid-tool kinematics in torch: velocity actions → tool poses → collider target poses.

Tools move by the twist their action commands, for one control step, with the tool origin
kept inside its workspace box (FluidLab's effector boundary). Orientation integrates
exactly (exponential map), so a tool turning about a fixed axis accumulates exactly the
commanded angle. Everything is differentiable with respect to the actions (the workspace
clamp almost everywhere).
"""

from __future__ import annotations

import math

import torch
from physim.envs.fluid.spec import DOF_NAMES, ToolSpec

from physim.mpm.motion import quat_mul

__all__ = ["ToolKinematics", "quat_exp", "quat_rotate"]


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `v` (..., 3) by unit quaternions `q` (..., 4) (x, y, z, w)."""
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def quat_exp(theta: torch.Tensor) -> torch.Tensor:
    """Unit quaternion of the rotation vector `theta` (..., 3) [rad] (axis · angle).

    Smooth at zero: sin(a/2)/a is evaluated through ``sinc`` and the angle through a
    square root shifted by 1e-30, whose gradient vanishes at the origin instead of 0·∞.
    """
    a = torch.sqrt((theta * theta).sum(-1, keepdim=True) + 1e-30)
    half_sinc = 0.5 * torch.sinc(a / (2.0 * math.pi))  # sin(a/2) / a
    return torch.cat([theta * half_sinc, torch.cos(0.5 * a)], dim=-1)


class ToolKinematics:
    """Poses of a task's tools and of their colliders, from the actions.

    Args:
        tools: The task's tools (the action concatenates their controlled components).
        control_dt: Duration of one control step [s].
        dtype, device: Of the tensors made here.
    """

    def __init__(self, tools: tuple[ToolSpec, ...], control_dt: float, dtype: torch.dtype, device: torch.device):
        self.tools = tools
        self.dt = float(control_dt)
        opts = {"dtype": dtype, "device": device}
        # action → twist of every tool: twist = action @ select, shape (A,) @ (A, n_tools·6)
        rows = []
        for k, t in enumerate(tools):
            for d in t.dofs:
                row = torch.zeros(len(tools) * 6, **opts)
                row[6 * k + DOF_NAMES.index(d)] = 1.0
                rows.append(row)
        self.select = torch.stack(rows)
        self.lo = torch.tensor([t.workspace[0] for t in tools], **opts)
        self.hi = torch.tensor([t.workspace[1] for t in tools], **opts)
        self.initial_pose = torch.tensor([(*t.position, *t.rotation) for t in tools], **opts)
        # parts: which tool, and the pose in the tool frame
        self.part_tool = [k for k, t in enumerate(tools) for _ in t.parts]
        self._part_index = torch.tensor(self.part_tool, device=device, dtype=torch.long)
        self.part_offset = torch.tensor([tuple(p.position[:3]) + (0.0,) * (3 - len(p.position)) for t in tools
                                         for p in t.parts], **opts).reshape(-1, 3)
        self.part_rotation = torch.tensor([tuple(p.rotation) for t in tools for p in t.parts], **opts).reshape(-1, 4)

    @property
    def part_count(self) -> int:
        return len(self.part_tool)

    def twist(self, action: torch.Tensor) -> torch.Tensor:
        """Linear [m/s] and angular [rad/s] velocity of each tool, shape (n_tools, 6)."""
        return (action.to(self.select.dtype) @ self.select).reshape(len(self.tools), 6)

    def advance(self, pose: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Tool poses (n_tools, 7) after one control step under `action` (A,)."""
        tw = self.twist(action)
        p = torch.minimum(torch.maximum(pose[:, :3] + self.dt * tw[:, :3], self.lo), self.hi)
        q = quat_mul(quat_exp(self.dt * tw[:, 3:]), pose[:, 3:])
        q = q / q.norm(dim=-1, keepdim=True)
        return torch.cat([p, q], dim=-1)

    def part_poses(self, pose: torch.Tensor) -> torch.Tensor:
        """World poses of every tool part (n_parts, 7) from the tool poses (n_tools, 7)."""
        idx = self._part_index if self._part_index.device == pose.device else self._part_index.to(pose.device)
        tp = pose.index_select(0, idx)
        pos = tp[:, :3] + quat_rotate(tp[:, 3:], self.part_offset)
        rot = quat_mul(tp[:, 3:], self.part_rotation)
        return torch.cat([pos, rot], dim=-1)

    def path(self, actions: torch.Tensor) -> torch.Tensor:
        """Poses of every tool at the T+1 control instants, shape (T+1, n_tools, 7)."""
        pose = self.initial_pose
        out = [pose]
        for a in actions:
            pose = self.advance(pose, a)
            out.append(pose)
        return torch.stack(out)
