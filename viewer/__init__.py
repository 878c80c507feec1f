"""The web viewer (viser): images, SDFs and radiance fields, from a run directory or live beside a fit.

>>> from viewer.server import serve          # doctest: +SKIP
>>> serve("runs/camera-hash", port=8080)      # doctest: +SKIP   (prints the URL, serves until Ctrl-C)
"""
