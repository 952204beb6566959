"""Spiking content-addressable memories: the hippocampal CA3 CAM (Casanueva-Morato et al., 2024)."""
