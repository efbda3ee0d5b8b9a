"""tools/slurm_train.sh and tools/slurm_test.sh pass their arguments to srun as the stock
OpenMMLab scripts do (checked with a stand-in ``srun`` that records its command line; a real
Slurm cluster is not available here)."""
import os
import os.path as osp
import stat

from tests.utils import run_tool

FAKE_SRUN = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_RECORD"\n'


def run_with_fake_srun(tmp_path, script, args, env=None):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / 'srun_args.txt'
    run_tool(['bash', osp.join('tools', script)] + args,
             env=dict(env or {}, PATH=f'{bin_dir}:{os.environ["PATH"]}', SRUN_RECORD=str(record)))
    return record.read_text().splitlines()


def test_slurm_train_forwards_partition_gpus_and_train_args(tmp_path):
    argv = run_with_fake_srun(
        tmp_path, 'slurm_train.sh', ['gpu', 'job1', 'CFG.py', 'work', '--amp', '--resume'],
        env=dict(GPUS='16', GPUS_PER_NODE='8', SRUN_ARGS='--quotatype=auto'))
    assert argv[:2] == ['-p', 'gpu']
    for flag in ('--job-name=job1', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                 '--cpus-per-task=5', '--kill-on-bad-exit=1', '--quotatype=auto'):
        assert flag in argv, argv
    python_at = argv.index('-u') - 1
    assert argv[python_at + 2].endswith(osp.join('tools', 'train.py'))
    assert argv[python_at + 3:] == ['CFG.py', '--work-dir=work', '--launcher=slurm', '--amp',
                                    '--resume']


def test_slurm_test_forwards_checkpoint_and_test_args(tmp_path):
    argv = run_with_fake_srun(
        tmp_path, 'slurm_test.sh', ['gpu', 'job2', 'CFG.py', 'ckpt.pth', '--show-dir', 'vis'])
    assert '--ntasks=8' in argv and '--gres=gpu:8' in argv
    python_at = argv.index('-u') - 1
    assert argv[python_at + 2].endswith('tools/test.py')
    assert argv[python_at + 3:] == ['CFG.py', 'ckpt.pth', '--launcher=slurm', '--show-dir',
                                    'vis']
