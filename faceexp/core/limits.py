"""Memory limits: a size-like option is checked against the memory it implies before
anything is allocated.

The limit is ``$FACEEXP_MAX_MEMORY_GB`` (gigabytes, 10^9 bytes) when set, else
:data:`DEFAULT_FRACTION` of the machine's physical memory (``os.sysconf``; an assumed
16 GB, so a limit of 8 GB, where the system does not say). A request over it is
refused with one line that gives the estimate, the limit and how to raise it
(:func:`check_memory`), instead of running for minutes into a ``MemoryError`` or the
kernel's OOM killer.

The estimates are of the arrays that grow with the option (the dominant term), not of
everything a run holds: a limit is a guard against a mistyped size, not an exact budget.
"""
from __future__ import annotations

import os

__all__ = [
    "DEFAULT_FRACTION",
    "MEMORY_VARIABLE",
    "bootstrap_memory",
    "check_memory",
    "explanation_memory",
    "format_bytes",
    "memory_limit",
    "physical_memory",
]

#: The environment variable that sets the limit, in GB (10^9 bytes).
MEMORY_VARIABLE = "FACEEXP_MAX_MEMORY_GB"
#: The default limit as a fraction of the machine's physical memory.
DEFAULT_FRACTION = 0.5
#: The physical memory assumed where ``os.sysconf`` cannot tell (bytes).
_UNKNOWN_MEMORY = 16 * 10 ** 9


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, or None where ``os.sysconf`` cannot tell."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return int(pages) * int(size) if pages > 0 and size > 0 else None


def memory_limit() -> tuple[int, str]:
    """The limit in bytes and where it comes from (for messages).

    Raises
    ------
    ValueError
        When ``$FACEEXP_MAX_MEMORY_GB`` is set to anything but a positive number.
    """
    text = os.environ.get(MEMORY_VARIABLE, "").strip()
    if text:
        try:
            gigabytes = float(text)
        except ValueError:
            gigabytes = float("nan")
        if not gigabytes > 0 or gigabytes == float("inf"):
            raise ValueError(f"{MEMORY_VARIABLE} must be a positive number of GB (e.g. "
                             f"{MEMORY_VARIABLE}=32), got {text!r}")
        return round(gigabytes * 1e9), f"{MEMORY_VARIABLE}={text}"
    total = physical_memory()
    known = total is not None
    total = total if known else _UNKNOWN_MEMORY
    share = f"{DEFAULT_FRACTION:.0%}" if DEFAULT_FRACTION != 0.5 else "half"
    where = (f"{share} of this machine's {format_bytes(total)}" if known else
             f"{share} of an assumed {format_bytes(total)}: this system does not report "
             "its memory")
    return int(total * DEFAULT_FRACTION), where


def format_bytes(n: float) -> str:
    """``2.5e12`` -> ``"2.5 TB"`` (decimal units, as ``$FACEEXP_MAX_MEMORY_GB``)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_memory(estimate: float, what: str, *, lower: str) -> None:
    """Refuse ``estimate`` bytes when they exceed :func:`memory_limit`.

    Parameters
    ----------
    estimate : float
        Bytes the request implies.
    what : str
        The request, as the message starts (``"--samples 1000000000"``).
    lower : str
        The option to lower, named in the message (``"--samples"``).

    Raises
    ------
    ValueError
        One line: the estimate, the limit, and how to lower the request or raise
        the limit.
    """
    limit, source = memory_limit()
    if estimate > limit:
        raise ValueError(f"{what} needs about {format_bytes(estimate)} of memory, over the "
                         f"limit of {format_bytes(limit)} ({source}); lower {lower}, or raise "
                         f"the limit with {MEMORY_VARIABLE}=<GB>")


def explanation_memory(n_samples: int, n_segments: int, n_layers: int = 1) -> int:
    """Bytes one LIME explanation holds for ``n_samples`` samples of ``n_segments``
    superpixels and ``n_layers`` layers (:class:`faceexp.explain.explainer.Explainer`).

    Per sample: 33 bytes per superpixel (the draw's float64 uniforms and boolean on/off
    matrix; the fit's float64 copy, centred design and the least-squares solver's copy
    of it), 32 per layer (targets and the fit's three float64 copies of them) and 24
    (the kernel weights and their copies).
    """
    return int(n_samples) * (33 * int(n_segments) + 32 * int(n_layers) + 24)


def bootstrap_memory(n_resamples: int, n_identities: int) -> int:
    """Bytes an identity bootstrap holds for ``n_resamples`` resamples of ``n_identities``
    identities: :func:`faceexp.core.bootstrap.draw_counts`' three int64 arrays of shape
    (n_resamples, n_identities) (the draws, their offsets and the counts) and the
    resampled EERs (float64, 16 bytes with their copy)."""
    return int(n_resamples) * (24 * int(n_identities) + 16)
