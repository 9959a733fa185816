"""Database layer: typed models, engine/session factory, migrations."""

from .base import Base, utcnow
from .engine import Database, make_engine, safe_url
from .models import PipelineRun, StageRun

__all__ = ["Base", "Database", "PipelineRun", "StageRun", "make_engine", "safe_url", "utcnow"]
