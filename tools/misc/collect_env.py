"""Print the environment and mmfusion's op paths: ``python tools/misc/collect_env.py``.

Same output as ``python -m mmfusion.utils.collect_env``; see that module.
"""
from mmfusion.utils.collect_env import main

if __name__ == '__main__':
    main()
