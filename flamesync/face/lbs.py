"""Face-model math as small pure functions (torch, batched, differentiable).

Kept apart from the classes that read model files so that each step can be tested against an
independent implementation. Shapes: ``B`` batch (frames), ``V`` vertices, ``K`` blendshapes,
``J`` joints.
"""

from __future__ import annotations

import torch


def blend_shapes(weights: torch.Tensor, template: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Add weighted blendshape offsets to a template.

    Parameters
    ----------
    weights : (B, K)
    template : (V, 3)
    deltas : (K, V, 3)

    Returns
    -------
    (B, V, 3)
    """
    return template[None] + torch.einsum("bk,kvc->bvc", weights, deltas)


def axis_angle_to_matrix(rotvec: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rodrigues' formula: axis-angle vectors (..., 3) to rotation matrices (..., 3, 3)."""
    angle = torch.linalg.norm(rotvec, dim=-1, keepdim=True).clamp_min(eps)  # (..., 1)
    axis = rotvec / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(skew)
    return eye + s * skew + (1 - c) * (skew @ skew)


def rotate_about_pivot(
    vertices: torch.Tensor, rotvec: torch.Tensor, pivot: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Linear blend skinning with one joint against the identity: ``v + w * (R(v - p) + p - v)``.

    Parameters
    ----------
    vertices : (B, V, 3)
    rotvec : (B, 3) axis-angle of the joint, radians
    pivot : (3,) joint centre
    weights : (V,) skin weight of the joint per vertex, 0..1

    Returns
    -------
    (B, V, 3)
    """
    rot = axis_angle_to_matrix(rotvec)  # (B, 3, 3)
    local = vertices - pivot
    moved = torch.einsum("bij,bvj->bvi", rot, local) + pivot
    return vertices + weights[None, :, None] * (moved - vertices)
