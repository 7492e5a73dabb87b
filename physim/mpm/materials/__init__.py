"""The constitutive-law library of physim's MPM: one law per module.

=====================  ==================================================  ====================
class                  law                                                 parameters
=====================  ==================================================  ====================
`Elastic`              fixed corotated, neo-Hookean, StVK                  E, nu, density
`VonMises`             Hencky elasticity + J2 return mapping (plasticine)   + yield_stress
`DruckerPrager`        Hencky elasticity + Klár et al. sand                + friction_angle, cohesion
`NewtonianFluid`       weakly compressible (Tait) + viscosity              bulk_modulus, viscosity
`NonNewtonianFluid`    Herschel–Bulkley, Papanastasiou-regularised         + yield_stress, consistency, n
`Rigid`                shape-matched rigid particles                       density
`NeuralMaterial`       torch modules for stress and/or plastic projection  module weights
=====================  ==================================================  ====================
"""

from physim.mpm.materials.base import Material, lame
from physim.mpm.materials.drucker_prager import DruckerPrager
from physim.mpm.materials.elastic import Elastic
from physim.mpm.materials.neural import NeuralMaterial, polar
from physim.mpm.materials.newtonian import NewtonianFluid
from physim.mpm.materials.non_newtonian import NonNewtonianFluid
from physim.mpm.materials.rigid import Rigid
from physim.mpm.materials.von_mises import VonMises

__all__ = [
    "DruckerPrager",
    "Elastic",
    "Material",
    "NeuralMaterial",
    "NewtonianFluid",
    "NonNewtonianFluid",
    "Rigid",
    "VonMises",
    "lame",
    "polar",
]
