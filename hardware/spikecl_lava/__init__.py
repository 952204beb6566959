"""spikecl's Lava side: load an exported network file, build the Lava process graph, run it (no torch)."""
