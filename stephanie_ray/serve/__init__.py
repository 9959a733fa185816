"""Ray Serve endpoints: the trained critic as a verifier (``POST /verify``), the NER retriever as a query
endpoint (``POST /entities/search``, ``GET /entities/{name}/graph``).

* :mod:`.service`     the plain classes (:class:`VerifierService`, :class:`EntityService`), no Ray, no HTTP;
* :mod:`.api`         pydantic models, the FastAPI apps, the token / body-size guard, errors -> 4xx;
* :mod:`.deployments` the Serve deployments around the services and the application builders
                      (``import_path`` of serve/config.yaml);
* :mod:`.cli`         ``stephanie serve``;
* :mod:`.models`      a critic and an entity index from the bundled examples when none exist (benchmark, tests).

Importing this package imports neither Ray nor FastAPI.
"""

from __future__ import annotations

from .service import EntityService, NotFound, VerifierService, VerifyOutput

__all__ = ["EntityService", "NotFound", "VerifierService", "VerifyOutput"]
