"""Runs Pyro's tutorial notebooks as scripts, once on Pyro and once on the engine, and compares.

The command line is ``benchmarks/pyro_tutorials.py``; the parts live here, one job each:
``notebook_script`` (a notebook to a plain script), ``stand_in_data`` (local synthetic files for
the tutorials' downloads), ``prelude`` (what the script runs first, inside its own process),
``pyro_alias`` (the ``pyro`` package that hands out the engine), ``execute`` (one script in one
subprocess with a timeout) and ``compare`` (the numbers two runs printed).
"""
