"""Digit-image self-consuming loop (paper §4 "Digits toy", Figs. 3, 7, 8).

Modules: ``data`` (offline loaders), ``kmeans`` (K-means in JAX and the corrector),
``ddpm`` (class-conditional DDPM, Equinox + Optax), ``evaluator`` (LeNet features, FID,
KID, diversity, class accuracy), ``loop`` (three arms, checkpoints, resume), ``plotting``,
``effective`` (hook for the effective γ̂), ``cli``.
"""
