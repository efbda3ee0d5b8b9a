# Two entry points do all the set-up, each idempotent, into a project-local .venv:
#   make test   installs what is missing, then runs the test suite
#   make lint   flake8, isort --check and codespell over the repository (CI runs it first)
#   make demo   installs what is missing, then trains and evaluates MVX-Net on the bundled KITTI sample
#   make demo-rgbir / demo-rgbd   Fusion-Mamba on the LLVIP pairs / GeminiFusion on the NYUDv2
#               frames: train, test with pictures, then the paired / RGB-D Inferencer
# mmcv 2.1.0 is built from source against the installed torch (about 13 min on 2 cores); pip keeps
# the built wheel in its cache, so a second install takes seconds.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mmfusion-installed
REQS := setup.py requirements/build.txt requirements/runtime.txt requirements/tests.txt \
	requirements/dev-constraints.txt requirements/lint.txt
DEMO_DIR ?= work_dirs/demo_kitti
PYTEST_ARGS ?=

.PHONY: install test test-slow lint demo demo-rgbir demo-rgbd benchmark clean

install: $(STAMP)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/build.txt
	$(PY) -c "import mmcv.ops" 2>/dev/null || { \
	    $(PIP) install "setuptools<70" && \
	    MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) $(PIP) install --no-build-isolation mmcv==2.1.0; }
	$(PIP) install -r requirements/runtime.txt -r requirements/tests.txt -r requirements/lint.txt \
	    -c requirements/dev-constraints.txt
	# openmim without its opendatalab dependency (which pins setuptools 60, breaking torch)
	$(PIP) install --no-deps openmim==0.3.9 model-index==0.1.11 ordered-set==4.1.0
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PY) -c "import mmcv.ops, mmdet3d, mmdet, mmseg, spconv.pytorch, mmfusion.det3d"
	touch $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m flake8 mmfusion tools tests configs projects demo setup.py
	$(PY) -m isort --check-only --diff mmfusion tools tests configs projects demo setup.py
	$(VENV)/bin/codespell mmfusion tools tests configs projects docs demo README.md

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

demo: install
	PYTHON=$(PY) DEMO_DIR=$(DEMO_DIR) bash tools/demo/kitti_mvxnet_demo.sh

demo-rgbir: install
	PYTHON=$(PY) bash tools/demo/llvip_fusion_mamba_demo.sh

demo-rgbd: install
	PYTHON=$(PY) bash tools/demo/nyudv2_gemini_fusion_demo.sh

clean:
	rm -rf $(DEMO_DIR)
