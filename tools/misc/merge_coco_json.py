"""Merge COCO detection json files (e.g. the train and test splits of a converter) into one.

Used by the Fusion-Mamba overfit run (docs/runs/fusion_mamba_llvip_overfit/run.sh) to train and
evaluate on all 6 bundled LLVIP pairs. Images keep their ids (they must be unique across the
inputs, as mmfusion's converters make them for LLVIP and FLIR); annotations are renumbered from
1 in input order; categories must be identical in every input. Other image keys (such as the
paired ``infrared_file_name``) are kept as they are.

Example::

    python tools/misc/merge_coco_json.py a.json b.json --out all.json
"""
import argparse
import json
import sys

from mmfusion.converters._io import dump_json


def merge_coco(paths):
    """Merge COCO dicts read from ``paths``.

    Returns:
        dict: ``images`` (concatenated), ``annotations`` (renumbered), ``categories`` (of the
        first file), ``info``.

    Raises:
        ValueError: If the category lists differ, an image id repeats, or an annotation refers
            to an image of another file; the message names the file.
    """
    merged = dict(images=[], annotations=[], categories=None,
                  info=dict(description='merge of ' + ', '.join(paths)))
    seen = set()
    for path in paths:
        with open(path) as f:
            coco = json.load(f)
        if merged['categories'] is None:
            merged['categories'] = coco['categories']
        elif coco['categories'] != merged['categories']:
            raise ValueError(f'{path}: categories differ from those of {paths[0]}')
        ids = {img['id'] for img in coco['images']}
        if ids & seen:
            raise ValueError(f'{path}: image ids {sorted(ids & seen)[:5]} also occur in an '
                             'earlier file')
        seen |= ids
        merged['images'].extend(coco['images'])
        for ann in coco['annotations']:
            if ann['image_id'] not in ids:
                raise ValueError(f'{path}: annotation {ann.get("id")} refers to image '
                                 f'{ann["image_id"]}, which is not in this file')
            merged['annotations'].append(dict(ann, id=len(merged['annotations']) + 1))
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('inputs', nargs='+', help='COCO json files')
    parser.add_argument('--out', required=True, help='merged json file')
    args = parser.parse_args(argv)
    try:
        merged = merge_coco(args.inputs)
    except ValueError as e:
        print(f'merge_coco_json.py: error: {e}', file=sys.stderr)
        return 2
    dump_json(merged, args.out)
    print(f'{args.out}: {len(merged["images"])} images, {len(merged["annotations"])} boxes')
    return 0


if __name__ == '__main__':
    sys.exit(main())
