"""Database layer: typed models, engine/session factory, migrations."""

from .base import Base, utcnow
from .engine import Database, make_engine, safe_url
from .models import Conversation, ImportFile, Message, PipelineRun, StageRun, Turn

__all__ = ["Base", "Conversation", "Database", "ImportFile", "Message", "PipelineRun", "StageRun", "Turn",
           "make_engine", "safe_url", "utcnow"]
