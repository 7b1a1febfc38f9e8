"""Op/B analysis, placement, tiling, scheduling and emission: named pure passes from a
LayerGraph to an ISA Program."""

__all__: list[str] = []
