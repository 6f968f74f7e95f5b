import os.path as osp

from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open(osp.join('mmkd_ext', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


setup(
    name='mmkd_ext',
    version=read_version(),
    description='Multi-teacher knowledge distillation for OpenMMLab 2.x '
    '(mmpretrain, mmdet, mmseg) with learned per-sample teacher weights',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmkd_ext', 'mmkd_ext.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.3.0,<3.4',
        'mmsegmentation>=1.2.2,<1.3',
        'mmpretrain>=1.2.0,<1.3',
        'numpy<2',
        'ftfy',
        'regex',
        'matplotlib',
    ],
    extras_require=dict(tests=['pytest>=7']),
    license='Apache License 2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
