"""``engine.infer``: inference algorithms (SVI, ELBOs, autoguides, Predictive, importance).

>>> from engine.infer.progress import Progress
>>> Progress().active
False
"""
