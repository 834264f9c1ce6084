"""Human motion with physics self-correction (paper §4 "Human motion", Figs. 1, 4, 5).

Modules: ``humanoid`` (the only code that touches MuJoCo models), ``representation``
(qpos trajectories <-> features), ``dataset`` (the generated ground-truth motions),
``physics`` (``simulate`` / ``correct_motion`` / ``make_corrector``), ``metrics``
(plausibility), ``evaluator`` (contrastive motion–text encoders; FID, Diversity, Matching,
R-precision, class accuracy, physical error, bootstrap CIs), ``generator`` (MDM-shaped
text-to-motion diffusion), ``loop`` (the self-consuming loop: sampling, MJX correction and
fine-tuning in one jitted step; checkpoints), ``plotting``, ``render``, ``demo`` and ``cli``.
"""
