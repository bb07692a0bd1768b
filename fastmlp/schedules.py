"""Learning-rate schedules: the rate used for each epoch (eq. U5 of docs/math.md).

The rate changes between epochs only, so an epoch still runs as one compiled
call in the Numba backend.
"""

import math

SCHEDULES = ("constant", "step", "cosine")


def learning_rate_at(schedule, lr, epoch, epochs, step_size=None, gamma=0.1):
    """The learning rate of ``epoch`` (0-based) out of ``epochs``.

    constant: ``lr``
    step:     ``lr * gamma ** (epoch // step_size)``  (step_size defaults to a third of the run)
    cosine:   ``lr * (1 + cos(pi * epoch / epochs)) / 2``, from ``lr`` down towards 0
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        step_size = step_size or max(1, epochs // 3)
        return lr * gamma ** (epoch // step_size)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def invscaling_rate(lr, samples_seen, power_t):
    """(U7) scikit-learn's 'invscaling': ``lr / (samples_seen + 1) ** power_t``,
    where ``samples_seen`` counts the training samples of every epoch before this
    one (scikit-learn's ``t_``), so the first epoch runs at ``lr``."""
    return lr / (samples_seen + 1) ** power_t


#: scikit-learn's 'adaptive': the rate is divided by this when the loss (or the
#: validation score) stops improving, and training stops once it is below
#: ADAPTIVE_MIN_RATE (eq. U7).
ADAPTIVE_DIVISOR = 5.0
ADAPTIVE_MIN_RATE = 1e-6
