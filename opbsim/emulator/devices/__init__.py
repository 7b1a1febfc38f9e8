"""Device models, each registered by name."""

__all__: list[str] = []
