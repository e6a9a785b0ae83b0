"""Error types. Every error a user can cause derives from :class:`LpuError`; the CLI
prints its message (which names the file, the place and the problem) and exits 1."""


__all__ = ["LpuError"]


class LpuError(Exception):
    """Base of all user-facing errors."""
