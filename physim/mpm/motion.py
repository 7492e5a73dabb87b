"""Kinematic collider motion in torch: per-substep poses and velocities from the actions.

Kept in torch so that gradients of the contact response reach the actions.
"""

from __future__ import annotations

import torch

__all__ = ["quat_mul", "substep_poses"]


def _hamilton(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a ⊗ b in vector form: (a_w b_v + b_w a_v + a_v × b_v, a_w b_w − a_v · b_v)."""
    av, aw = a[..., :3], a[..., 3:]
    bv, bw = b[..., :3], b[..., 3:]
    av, bv = torch.broadcast_tensors(av, bv)
    return torch.cat([aw * bv + bw * av + torch.linalg.cross(av, bv), aw * bw - (av * bv).sum(-1, keepdim=True)], -1)


def _conj(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([-q[..., :3], q[..., 3:]], -1)


class _QuatMul(torch.autograd.Function):
    """a ⊗ b as one autograd node (its expression as torch operations records about 35).

    The product is bilinear, c = L(a) b = R(b) a, with L(a)ᵀ = L(ā) and R(b)ᵀ = R(b̄), so
    ∂ℓ/∂a = g ⊗ b̄ and ∂ℓ/∂b = ā ⊗ g for any quaternions (unit or not). The per-step tool
    kinematics of the environments call it three times per control step; as one node each,
    the backward pass evaluates three nodes instead of about a hundred small ones.
    """

    generate_vmap_rule = True  # torch.func transforms (vjp, grad, vmap) may trace through it

    @staticmethod
    def forward(a, b):
        return _hamilton(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:  # through quat_mul again, so that double backward works
            ga = quat_mul(g, _conj(b)).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            gb = quat_mul(_conj(a), g).sum_to_size(b.shape)
        return ga, gb


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of quaternions (x, y, z, w), shapes (..., 4) (broadcast)."""
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        if torch._C._are_functorch_transforms_active():
            return _QuatMul.apply(a, b)
        # outside torch.func the node is made without `Function.apply`'s binding of default arguments,
        # which calls `inspect.signature` every time (about 3 % of a taped control step's CPU time)
        return _QUAT_MUL_NODE(a, b)
    return _hamilton(a, b)


_QUAT_MUL_NODE = super(torch.autograd.Function, _QuatMul).apply  # what `_QuatMul.apply` calls after binding


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
    if target_quat is not None:
        # every substep at once (a dozen autograd nodes instead of about ten per substep)
        a = torch.arange(substeps + 1, dtype=pose.dtype, device=pose.device)[:, None, None]
        qs = (1 - a / substeps) * q + (a / substeps) * target_quat
        qs = qs / qs.norm(dim=-1, keepdim=True)
        ps = p + (a * dt) * lin
        k = pose.shape[0]
        records = torch.cat([ps[:-1], qs[:-1], lin.expand(substeps, k, 3), ang.expand(substeps, k, 3)], dim=-1)
        return records, torch.cat([ps[-1], qs[-1]], dim=-1)
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
