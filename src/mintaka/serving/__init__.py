"""Serving in core: routing maths, the prediction log and the local inference server's parts."""
