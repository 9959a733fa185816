"""Scoring: scorers, the ensemble, MARS agreement, the ranker, and the scoring stage."""
