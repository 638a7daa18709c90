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


# ------------------------------------------------------------------ articulated models (FLAME)
def vertices2joints(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations as fixed linear combinations of vertices.

    Parameters
    ----------
    regressor : (J, V)
    vertices : (B, V, 3)

    Returns
    -------
    (B, J, 3)
    """
    return torch.matmul(regressor, vertices)  # broadcasts over B; much faster than einsum on CPU


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """The input of the pose-corrective blendshapes: ``R - I`` of every non-root joint, flattened.

    The root is left out because rotating the whole head must not deform it. Each matrix is
    flattened row-major and the joints follow each other, so joint ``j`` (``j >= 1``) owns the
    columns ``9 * (j - 1) .. 9 * j - 1``.

    Parameters
    ----------
    rot_mats : (B, J, 3, 3)

    Returns
    -------
    (B, 9 * (J - 1))
    """
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).reshape(rot_mats.shape[0], -1)


def batch_rigid_transform(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a kinematic tree: world transforms of every joint, relative to the rest pose.

    Each joint rotates about its rest position; its world transform is its parent's world
    transform followed by its own local one. The returned transforms map a rest-pose point
    rigidly attached to the joint to its posed position, which is what skinning blends.

    Parameters
    ----------
    rot_mats : (B, J, 3, 3)
        Local rotation of each joint.
    joints : (B, J, 3)
        Rest-pose joint locations.
    parents : (J,) long
        Parent index of each joint, ``-1`` for the root; every parent precedes its children.

    Returns
    -------
    posed_joints : (B, J, 3)
        Joint locations after posing.
    rel_transforms : (B, J, 4, 4)
        Homogeneous transforms from the rest pose to the posed pose.
    """
    batch, n_joints = joints.shape[:2]
    offsets = joints.clone()
    offsets[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.zeros(batch, n_joints, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rot_mats
    local[..., :3, 3] = offsets
    local[..., 3, 3] = 1
    chain = [local[:, 0]]
    for j in range(1, n_joints):
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
    posed_joints = world[..., :3, 3]
    # Subtract the rotated rest position so the transform acts on rest-pose coordinates.
    rel = world.clone()
    rel[..., :3, 3] = posed_joints - torch.einsum("bjik,bjk->bji", world[..., :3, :3], joints)
    return posed_joints, rel


def skin_vertices(vertices: torch.Tensor, transforms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning: each vertex moves by the weighted mean of its joints' transforms.

    Parameters
    ----------
    vertices : (B, V, 3)
        Rest-pose vertices (with pose correctives already added).
    transforms : (B, J, 4, 4)
        Rest-to-posed transforms from :func:`batch_rigid_transform`.
    weights : (V, J)
        Skinning weights, rows summing to 1.

    Returns
    -------
    (B, V, 3)
    """
    batch, n_joints = transforms.shape[:2]
    # Blend the 3x4 matrices first (J is small), then apply one per vertex.
    blended = torch.matmul(weights, transforms[..., :3, :].reshape(batch, n_joints, 12))
    blended = blended.view(batch, -1, 3, 4)
    return torch.matmul(blended[..., :3], vertices[..., None])[..., 0] + blended[..., 3]


def lbs(
    betas: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    regressor: torch.Tensor,
    parents: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL/FLAME-style skinning: shape blendshapes, pose correctives, then a posed skeleton.

    Steps: ``v_shaped = v_template + shapedirs . betas``; joints are regressed from
    ``v_shaped``; ``v_posed = v_shaped + posedirs . pose_features(R)``; the kinematic chain
    poses the joints and :func:`skin_vertices` moves ``v_posed`` with them.

    Parameters
    ----------
    betas : (B, K)
        Shape and expression coefficients, in the order of ``shapedirs``' last axis.
    pose : (B, J, 3)
        Axis-angle rotation of each joint, radians.
    v_template : (V, 3)
    shapedirs : (V, 3, K)
    posedirs : (V, 3, 9 * (J - 1))
    regressor : (J, V)
    parents : (J,) long
    weights : (V, J)

    Returns
    -------
    vertices : (B, V, 3)
    joints : (B, J, 3)
        Posed joint locations.
    """
    v_shaped = v_template[None] + torch.einsum("bk,vck->bvc", betas, shapedirs)
    rest_joints = vertices2joints(regressor, v_shaped)
    rot_mats = axis_angle_to_matrix(pose)  # (B, J, 3, 3)
    v_posed = v_shaped + torch.einsum("bp,vcp->bvc", pose_features(rot_mats), posedirs)
    joints, transforms = batch_rigid_transform(rot_mats, rest_joints, parents)
    return skin_vertices(v_posed, transforms, weights), joints
