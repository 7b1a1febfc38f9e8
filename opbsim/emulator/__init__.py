"""Device timing models, the discrete-event engine, the functional executor and serving.

A device model never computes values; the functional executor never counts cycles."""

__all__: list[str] = []
