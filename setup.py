"""Installs the ``mmfusion`` package.

Dependencies are not resolved through ``install_requires``: mmcv has to be built from source (or
taken from OpenMMLab's prebuilt wheels) for the installed torch, and pip must not replace a
user's torch while resolving. ``requirements/runtime.txt`` states the compatible ranges; the
Makefile installs the exact CPU development stack of ``requirements/dev-constraints.txt``.

As the OpenMMLab repositories do, the configs, tools, demos and ``model-index.yml`` are shipped
inside the package under ``mmfusion/.mim`` (symbolic links for an editable install, copies
otherwise), so that ``mim train mmfusion CONFIG`` / ``mim test`` find them.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

MIM_FILES = ('configs', 'projects', 'tools', 'demo', 'model-index.yml')


def read_version():
    scope = {}
    with open('mmfusion/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    """Make ``mmfusion/.mim/<name>`` for each of ``MIM_FILES``: links when installed in
    development mode (``pip install -e .``), copies when building a wheel or installing."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'install', 'build', 'build_py'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    root = osp.dirname(osp.abspath(__file__))
    mim_dir = osp.join(root, 'mmfusion', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(root, name)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmfusion',
        version=read_version(),
        description='Multimodal-fusion perception methods for the OpenMMLab stack',
        long_description=open('README.md').read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, multimodal fusion, 3D detection, segmentation, openmmlab',
        packages=find_packages(include=['mmfusion', 'mmfusion.*']),
        include_package_data=True,
        package_data={'mmfusion': ['.mim/**/*', '.mim/*']},
        python_requires='>=3.9',
        extras_require={'mamba': ['mamba-ssm>=2.2.2', 'causal-conv1d>=1.4.0']},
        license='Apache-2.0',
        zip_safe=False,
    )
