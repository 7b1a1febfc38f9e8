"""Device timing models beyond the generic streaming engine (the SN40L dataflow model lives here)."""

__all__: list[str] = []
