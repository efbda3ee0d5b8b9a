"""Installs the ``mmfusion`` package.

The OpenMMLab stack is not pinned through ``install_requires``: mmcv has to be built from
source against the installed torch (see ``make install``), and pip must not replace the local
CPU torch wheel with a CUDA one while resolving. ``requirements/runtime.txt`` holds the pins.
"""
from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open('mmfusion/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmfusion',
    version=read_version(),
    description='Multimodal-fusion perception methods for the OpenMMLab stack',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmfusion', 'mmfusion.*']),
    python_requires='>=3.9',
    extras_require={'mamba': ['mamba-ssm>=2.2.2', 'causal-conv1d>=1.4.0']},
    license='Apache-2.0',
    zip_safe=False,
)
