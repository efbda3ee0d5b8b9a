"""Middle encoders (voxel backbones): ``sslfusion_sparse_unet`` (mmdet3d, needs spconv). Imported
by ``mmfusion.det3d``, not here."""
