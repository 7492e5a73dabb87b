"""GNS baseline: the Graph Network-based Simulator on the dense particle graph.

    from physim.operators.gns import GNS
    model = GNS(dim=2, radius=0.03, bounds=[[0, 0], [1, 1]])
    model.fit_statistics(train_trajectories)
"""

from .model import GNS

__all__ = ["GNS"]
