"""Tables, plots, traces and paper-vs-ours reports."""

__all__: list[str] = []
