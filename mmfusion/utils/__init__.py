from .dist import setup_distributed

__all__ = ['setup_distributed']
