"""The trainer, as small parts: building a run (:mod:`~d2sp.training.build`), one epoch
(:mod:`~d2sp.training.epoch`), the model over a loader without gradients, e.g. each epoch's
test pass (:mod:`~d2sp.training.inference`), WAR/UAR and the purification scores
(:mod:`~d2sp.training.metrics`), checkpoints (:mod:`~d2sp.training.checkpoint`), what
observes a run (:mod:`~d2sp.training.callbacks`), the config checks
(:mod:`~d2sp.training.checks`), the run folder (:mod:`~d2sp.training.folder`), the process
group under ``torchrun`` (:mod:`~d2sp.training.distributed`) and its bookkeeping
(:mod:`~d2sp.training.replicas`), and the loop (:mod:`~d2sp.training.fit`).

Nothing is imported here, so that a part (e.g. :mod:`~d2sp.training.distributed`, which
the command line reads first) loads without the rest; ``from d2sp import train`` is the
entry point.
"""
