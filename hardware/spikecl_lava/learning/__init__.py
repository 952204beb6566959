"""spikecl on Lava's learning engine: plastic process graphs that learn on-line (no torch)."""
