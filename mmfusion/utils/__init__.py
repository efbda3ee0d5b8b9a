from .compat import restore_mmengine_checkpoint_loading, restore_numpy_long
from .dist import setup_distributed

__all__ = ['setup_distributed', 'restore_mmengine_checkpoint_loading', 'restore_numpy_long']
