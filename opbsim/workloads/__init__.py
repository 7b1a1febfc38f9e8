"""Model configurations, layer graphs and serving scenarios: what runs, with exact shapes."""

__all__: list[str] = []
