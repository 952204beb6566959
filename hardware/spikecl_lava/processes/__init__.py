"""Lava processes spikecl adds (each in its own module: Lava imports every module here to find models)."""
