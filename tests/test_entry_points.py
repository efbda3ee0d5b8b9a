"""Each host entry point registers its modules when a config names it in `custom_imports`
(checked in a fresh interpreter, so nothing imported by other tests helps)."""
import textwrap

from tests.utils import PYTHON, run_tool

SCRIPT = textwrap.dedent("""
    from mmengine.config import Config
    checks = [('mmfusion.det3d', 'mmdet3d.registry', 'VISUALIZERS', 'CameraViewDet3DVisualizer'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'MODELS', 'GeminiPointFusion'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'MODELS', 'SpaceAlignment'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'MODELS', 'LatentCrossModalFusion'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'MODELS', 'ScaleAlignedFusion'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'HOOKS', 'NormEvalHook'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'MODELS', 'VoxelRCNNBBoxHead'),
              ('mmfusion.det3d', 'mmdet3d.registry', 'TRANSFORMS', 'MultiModalObjectSample'),
              ('mmfusion.det', 'mmdet.registry', 'TRANSFORMS', 'PairedRandomAffine'),
              ('mmfusion.det', 'mmdet.registry', 'OPTIM_WRAPPER_CONSTRUCTORS',
               'YOLOv5OptimWrapperConstructor'),
              ('mmfusion.seg', 'mmseg.registry', 'HOOKS', 'OptimizerResetHook'),
              ('mmfusion.det', 'mmdet.registry', 'DATASETS', 'PairedCocoDataset'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'PairedDetDataPreprocessor'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'VSSBlock'),
              ('mmfusion.det', 'mmdet.registry', 'TRANSFORMS', 'PairedMosaic'),
              ('mmfusion.det', 'mmdet.registry', 'TRANSFORMS', 'RGBDegradation'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'FusionMambaBlock'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'DualStreamCSPDarknet'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'PairedSingleStageDetector'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'DAMFDetector'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'DistributionAlignedFusion'),
              ('mmfusion.det', 'mmdet.registry', 'MODELS', 'GMMNegLogLikelihoodLoss'),
              ('mmfusion.seg', 'mmseg.registry', 'MODELS', 'GeminiFusionAttention'),
              ('mmfusion.seg', 'mmseg.registry', 'MODELS', 'GeminiMixVisionTransformer'),
              ('mmfusion.seg', 'mmseg.registry', 'MODELS', 'GeminiFusionEncoderDecoder'),
              ('mmfusion.seg', 'mmseg.registry', 'MODELS', 'RGBDSegDataPreProcessor'),
              ('mmfusion.seg', 'mmseg.registry', 'DATASETS', 'NYUDv2Dataset'),
              ('mmfusion.seg', 'mmseg.registry', 'TRANSFORMS', 'LoadDepthFromFile'),
              ('mmfusion.seg', 'mmseg.registry', 'METRICS', 'MultiOutputIoUMetric')]
    import importlib
    for entry, registry, table, name in checks:
        Config.fromstring(f"custom_imports = dict(imports=['{entry}'])", '.py')  # imports it
        found = getattr(importlib.import_module(registry), table).get(name)
        assert found is not None and found.__name__ == name, (entry, name)
    import mmcv.ops.scatter_points as sp, mmfusion.ops
    assert sp.dynamic_scatter is mmfusion.ops.dynamic_scatter
    print('entry points ok')
""")


def test_entry_points_register_through_custom_imports():
    proc = run_tool([PYTHON, '-W', 'ignore', '-c', SCRIPT])
    assert 'entry points ok' in proc.stdout


HOSTS = ('mmdet3d', 'mmdet', 'mmseg', 'spconv', 'numba')
ISOLATION = {
    # entry point or module: host packages it may load (everything else in HOSTS must stay out)
    'mmfusion.det': {'mmdet'},
    'mmfusion.seg': {'mmseg', 'mmdet'},  # mmseg imports mmdet itself (its Mask2Former head)
    # mmdet3d imports mmdet, spconv and numba itself; mmseg stays out.
    'mmfusion.det3d': {'mmdet3d', 'mmdet', 'spconv', 'numba'},
    'mmfusion.models.layers': set(),
    'mmfusion.ops': set(),
    'mmfusion.engine': set(),
}
ISOLATION_SCRIPT = textwrap.dedent("""
    import importlib, json, sys, time
    start = time.perf_counter()
    importlib.import_module(sys.argv[1])
    seconds = time.perf_counter() - start
    hosts = sorted(h for h in {HOSTS!r} if h in sys.modules)
    print(json.dumps(dict(hosts=hosts, seconds=seconds)))
""").replace('{HOSTS!r}', repr(HOSTS))


def test_entry_points_load_only_their_host():
    """Importing an entry point in a fresh interpreter loads its own host library only."""
    import json
    for module, allowed in ISOLATION.items():
        proc = run_tool([PYTHON, '-W', 'ignore', '-c', ISOLATION_SCRIPT, module])
        loaded = set(json.loads(proc.stdout.strip().splitlines()[-1])['hosts'])
        assert loaded <= allowed, (module, sorted(loaded - allowed))
