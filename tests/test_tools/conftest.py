"""Checkpoint and data fixtures of the inference, demo, --show-dir and browse tests."""
from tests.inference_fixtures import (damf_ckpt, fusion_mamba_ckpt,  # noqa: F401
                                      gemini_mvxnet_ckpt, gemini_seg_ckpt, llvip_infos,
                                      sslfusion_ckpt)
