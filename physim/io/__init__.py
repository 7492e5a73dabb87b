"""Files in and out of physim: atomic writes (later: HDF5 datasets, meshes, trajectory export)."""

from physim.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]
