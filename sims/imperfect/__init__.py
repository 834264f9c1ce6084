"""Imperfect correctors across the experiments: the Gaussian maps (``sims.gaussian.
imperfect_maps``), the real correctors (Gaussian histograms, digits K-means, motion physics
trackers) measured and placed on them (``real``), and ``scsc imperfect`` (``report``).

A layer above the experiments: it imports them; none of them imports it.
"""
