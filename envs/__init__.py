"""physim.envs: gymnasium environments ("physim/<Task>-v0"), registered on import.

Installed from the top-level folder ``envs/`` as ``physim.envs``. Environments see the
simulators only through torch: this package never imports Warp or Taichi.
"""

__all__: list[str] = []
