"""CaseBooks: conversations become curricula tied to goals (conversion, grouping, store, progress)."""

from .progress import Progress, compute_progress, wilson_lower_bound
from .store import CaseBookStore

__all__ = ["CaseBookStore", "Progress", "compute_progress", "wilson_lower_bound"]
