"""Image crops of KITTI's ground-truth database, for multimodal GT sampling.

SSLFusion's official KITTI recipe (github.com/TLDBN/SSLFsion,
``tools/cfgs/kitti/voxel_rcnn_3class_SSLFusion.yaml``: ``gt_sampling`` with ``AUG_WITH_IMAGE``,
``IMG_AUG_TYPE: kitti``; ``pcdet/datasets/augmentor/database_sampler.py``) pastes each sampled
object's points AND its image patch into the training frame. The official sampler reads the
source frame's full image at sampling time and crops it around the object's 2D box; here the
crop is cut once, when the database is built, and stored beside the object's points.

For every entry of mmdet3d's ``{extra_tag}_dbinfos_train.pkl`` (built by
``create_groundtruth_database`` from the train infos) this writes
``{extra_tag}_gt_database_img/<stem>.png`` (``<stem>`` = the entry's ``.bin`` name, e.g.
``000003_Car_0``): the pixels of the object's 2D annotation box (``instances[k]['bbox']``,
rounded outwards to whole pixels and clipped to the image) in the source ``image_2`` frame, and
adds to the entry

- ``img_path``: the crop, relative to the data root;
- ``bbox``: (4,) int ``[x1, y1, x2, y2]`` of the crop in the source image (pixels, x2/y2
  exclusive);
- ``lidar2img``: (4, 4) the source frame's LiDAR-to-image projection (for re-projecting the
  object's points into another frame's camera, see
  :class:`~mmfusion.datasets.transforms.multimodal_object_sample.MultiModalObjectSample`).

``gt_idx`` of an entry indexes the frame's annotations without the ignored ones (label -1:
``DontCare`` and the classes outside Pedestrian/Cyclist/Car), in file order: the order of
mmdet3d's ``KittiDataset.parse_ann_info``, from which the stock database is built.
"""
import os
import os.path as osp
import pickle

import mmcv
import numpy as np

from ._io import DatasetFormatError, dump_pickle, log

__all__ = ['add_gt_database_image_crops']


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def add_gt_database_image_crops(data_root, train_info_name, dbinfos_name, extra_tag='kitti',
                                img_prefix='training/image_2'):
    """Cut and store every database object's image crop; extend the database index.

    Args:
        data_root (str): The converter's data root (holds the infos, the database and
            ``img_prefix``); the dbinfos file in it is rewritten with the added keys.
        train_info_name (str): v2 infos the database was built from, relative to ``data_root``.
        dbinfos_name (str): The database index, relative to ``data_root``.
        extra_tag (str): Output name prefix. Default ``'kitti'``.
        img_prefix (str): Folder of the frames' images under ``data_root``.

    Returns:
        str: The crop folder's name, ``{extra_tag}_gt_database_img``.

    Raises:
        DatasetFormatError: If a database entry names a frame or annotation the train infos do
            not have, or an annotation's 2D box holds no pixel of the image.
    """
    infos = {info['sample_idx']: info
             for info in _load(osp.join(data_root, train_info_name))['data_list']}
    db_path = osp.join(data_root, dbinfos_name)
    database = _load(db_path)
    folder = f'{extra_tag}_gt_database_img'
    os.makedirs(osp.join(data_root, folder), exist_ok=True)
    images = {}
    n = 0
    for entries in database.values():
        for entry in entries:
            info = infos.get(entry['image_idx'])
            if info is None:
                raise DatasetFormatError(db_path, f'frame {entry["image_idx"]} is not in '
                                         f'{train_info_name}')
            kept = [i for i in info['instances'] if i['bbox_label_3d'] > -1]
            if not 0 <= entry['gt_idx'] < len(kept):
                raise DatasetFormatError(db_path, f'frame {entry["image_idx"]} has no '
                                         f'annotation {entry["gt_idx"]}')
            cam = info['images']['CAM2']
            if entry['image_idx'] not in images:
                images = {entry['image_idx']: mmcv.imread(
                    osp.join(data_root, img_prefix, cam['img_path']))}
            img = images[entry['image_idx']]
            h, w = img.shape[:2]
            x1, y1, x2, y2 = kept[entry['gt_idx']]['bbox']
            box = [int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h)),
                   int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))]
            if box[2] <= box[0] or box[3] <= box[1]:
                raise DatasetFormatError(
                    db_path, f'frame {entry["image_idx"]}, annotation {entry["gt_idx"]}: 2D box '
                    f'{[x1, y1, x2, y2]} holds no pixel of the {w}x{h} image')
            stem = osp.splitext(osp.basename(entry['path']))[0]
            entry['img_path'] = osp.join(folder, f'{stem}.png')
            mmcv.imwrite(img[box[1]:box[3], box[0]:box[2]], osp.join(data_root,
                                                                     entry['img_path']))
            entry['bbox'] = np.array(box, dtype=np.int64)
            entry['lidar2img'] = np.array(cam['lidar2img'], dtype=np.float64)
            n += 1
    dump_pickle(database, db_path)
    log(f'KITTI: stored {n} GT database image crops in {folder}')
    return folder
