"""NCLaw: neural constitutive laws learned through physim's differentiable MPM.

The governing PDE stays MPM's; only the material is learned, with priors that hold by
construction (Ma et al., "Learning Neural Constitutive Laws From Motion Observations for
Generalizable PDE Dynamics", ICML 2023; reimplemented from the paper):

- `InvariantElasticLaw` (variant a): invariants of the right stretch (polar decomposition
  with a backward finite at repeated singular values), P = R T(E).
- `E3nnElasticLaw` (variant b): e3nn network on the strain's irreps 0e + 2e → Kirchhoff stress.
- `NeuralPlasticity`: rotation-equivariant learned return mapping, identity at initialisation.
- `PlainMLPStress`, `PlainMLPPlasticity`: no-prior baselines on the entries of F.
- `NeuralConstitutiveLaw`: elastic + plastic + density as one file; `load_law`, `load_material`.

Stress and projection modules take F of shape (..., d, d); stresses are first
Piola–Kirchhoff [Pa]. Importing this package loads no backend (e3nn is imported when
an `E3nnElasticLaw` is built).
"""

from physim.operators.nclaw.baselines import PlainMLPPlasticity, PlainMLPStress
from physim.operators.nclaw.equivariant import E3nnElasticLaw
from physim.operators.nclaw.invariant import InvariantElasticLaw
from physim.operators.nclaw.law import (
    ELASTIC_LAWS,
    LAW_VERSION,
    PLASTIC_LAWS,
    NeuralConstitutiveLaw,
    load_law,
    load_material,
)
from physim.operators.nclaw.plastic import NeuralPlasticity
from physim.operators.nclaw.tensors import polar

__all__ = [
    "ELASTIC_LAWS",
    "LAW_VERSION",
    "PLASTIC_LAWS",
    "E3nnElasticLaw",
    "InvariantElasticLaw",
    "NeuralConstitutiveLaw",
    "NeuralPlasticity",
    "PlainMLPPlasticity",
    "PlainMLPStress",
    "load_law",
    "load_material",
    "polar",
]
