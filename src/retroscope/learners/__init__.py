"""The learners shipped with retroscope, one package each (see :mod:`retroscope.core.learner`).

- :mod:`.regression`: a heteroscedastic network per task target, conformal intervals and a
  feature-density out-of-distribution flag;
- :mod:`.detection`: instance segmentation (Mask R-CNN) with calibrated per-object parameters,
  COCO evaluation and the task's physics refinement;
- :mod:`.classification`: the bin of one parameter (``BinnedTargets``) with a calibrated
  probability, a conformal set of classes and a feature-density out-of-distribution flag.

Like tasks, they are registered through entry points (group ``retroscope.learners``); no shared
module imports them.
"""
