"""Human motion with physics self-correction (paper §4 "Human motion", Figs. 1, 4, 5).

Modules: ``humanoid`` (the only code that touches MuJoCo models), ``representation``
(qpos trajectories <-> features), ``dataset`` (the generated ground-truth motions),
``physics`` (``simulate`` / ``correct_motion`` / ``make_corrector``), ``metrics``
(plausibility), ``evaluator`` (contrastive motion–text encoders; FID, Diversity, Matching,
R-precision, class accuracy), ``render``, ``demo`` and ``cli``.
"""
