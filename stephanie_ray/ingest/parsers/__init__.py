"""One module per provider: pure functions from a parsed JSON object (or bytes) to :class:`~..model.Conv`."""
