"""Peak resident memory of this process, as the CPU benchmarks in ``tools/analysis_tools/``
measure it (Linux only: ``/proc/self``).

``tracemalloc`` misses torch's CPU allocations, so the benchmarks use the kernel's counters:
:func:`reset_peak_rss` resets the peak resident set size (``VmHWM``) to the current one by
writing 5 to ``/proc/self/clear_refs`` and returns ``VmRSS``; after the measured work,
``status_bytes('VmHWM') - that`` is the peak increase.
"""

__all__ = ['status_bytes', 'reset_peak_rss']


def status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (e.g. ``'VmRSS'``, ``'VmHWM'``), in bytes.

    Raises:
        RuntimeError: if the field is not in /proc/self/status.
        OSError: where /proc/self/status cannot be read (not Linux).
    """
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def reset_peak_rss() -> int:
    """Reset ``VmHWM`` to the current resident size; returns ``VmRSS`` in bytes.

    Raises:
        OSError: where /proc/self/clear_refs cannot be written (not Linux, no permission).
    """
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return status_bytes('VmRSS')
