"""mmfusion.utils.compat: mmengine checkpoints load under torch>=2.6; stock ObjectSample runs."""
import numpy as np
import torch

from mmfusion.utils.compat import restore_mmengine_checkpoint_loading, restore_numpy_long


def test_mmengine_checkpoint_with_message_hub_loads(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
    model = torch.nn.Linear(3, 2)
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    ckpt = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': model.state_dict(),
                     'message_hub': {'log_scalars': {'loss': buffer}},
                     'meta': {'seed': np.int64(3), 'arr': np.zeros(2)}}, ckpt)
    restore_mmengine_checkpoint_loading()
    restore_mmengine_checkpoint_loading()  # idempotent
    other = torch.nn.Linear(3, 2)
    loaded = load_checkpoint(other, ckpt, map_location='cpu')
    assert torch.equal(other.weight, model.weight)
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5


def test_np_long_for_stock_object_sample():
    restore_numpy_long()
    assert np.array([1.7]).astype(np.long).dtype == np.int_
