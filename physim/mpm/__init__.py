"""MLS-MPM on Warp: multi-material bodies, colliders and end-effectors, differentiable rollouts.

Importing this package loads no backend; the first `Simulator.step` compiles (or loads
from ``~/.cache``) the Warp kernels of the scene's dimension, precision and materials.

Example::

    from physim.mpm import Body, Box, Elastic, PlaneCollider, SceneConfig, Simulator

    cfg = SceneConfig(dim=3, grid=32, dt=2e-4, substeps=10)
    jelly = Body(name="jelly", shape=Box(center=(0.5, 0.3, 0.5), size=(0.2, 0.2, 0.2)),
                 material=Elastic(E=1e5, nu=0.2, density=1e3))
    sim = Simulator(cfg, [jelly])
    traj = sim.rollout(sim.reset(), steps=20, observe=lambda t, s: s.x)

See docs/mpm.md.
"""

from physim.mpm.bodies import Body
from physim.mpm.colliders import (
    BoxCollider,
    CapsuleCollider,
    Collider,
    CylinderCollider,
    MeshCollider,
    PlaneCollider,
    SphereCollider,
)
from physim.mpm.config import SceneConfig
from physim.mpm.materials import (
    DruckerPrager,
    Elastic,
    Material,
    NeuralMaterial,
    NewtonianFluid,
    NonNewtonianFluid,
    Rigid,
    VonMises,
)
from physim.mpm.shapes import Box, Cylinder, Mesh, Particles, Sphere
from physim.mpm.simulator import Simulator
from physim.mpm.state import State

__all__ = [
    "Body",
    "Box",
    "BoxCollider",
    "CapsuleCollider",
    "Collider",
    "Cylinder",
    "CylinderCollider",
    "DruckerPrager",
    "Elastic",
    "Material",
    "Mesh",
    "MeshCollider",
    "NeuralMaterial",
    "NewtonianFluid",
    "NonNewtonianFluid",
    "Particles",
    "PlaneCollider",
    "Rigid",
    "SceneConfig",
    "Simulator",
    "Sphere",
    "SphereCollider",
    "State",
    "VonMises",
]
