"""The peak-RSS helpers the CPU benchmarks share (Linux /proc counters)."""
import mmap
import sys

import pytest

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='/proc is Linux')


def test_peak_increase_sees_an_allocation_freed_before_reading():
    before = reset_peak_rss()
    assert before == pytest.approx(status_bytes('VmRSS'), rel=0.05)
    # 64 MiB of fresh anonymous pages, touched (an allocator could reuse resident memory)
    block = mmap.mmap(-1, 64 * 2**20)
    block.write(b'\x01' * len(block))
    block.close()
    assert status_bytes('VmHWM') - before >= 48 * 2**20
    # a new reset forgets that peak
    after = reset_peak_rss()
    assert status_bytes('VmHWM') - after < 48 * 2**20


def test_unknown_field_is_an_error():
    with pytest.raises(RuntimeError, match='VmNothing'):
        status_bytes('VmNothing')
