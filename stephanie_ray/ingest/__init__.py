"""Chat-export ingestion: detect, parse (one module per provider), normalise, write.

Entry point: :func:`stephanie_ray.ingest.importer.run_import`.
"""
