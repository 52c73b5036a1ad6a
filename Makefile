# eo-vre: every target calls the `vre` CLI (or pytest); `make setup` prepares a fresh machine.
PYTHON ?= python3
VRE ?= vre
FLAVOR ?= debian
## Another platform of the matrix, emulated by qemu-user (README "arm64"): make images PLATFORM=linux/arm64 builds and
## tests what Debian can give arm64, base-geo and deep-learning cpu (desktop needs otb-qgis: amd64 only).
PLATFORM ?=
ifneq ($(PLATFORM),)
IMAGES ?= base-geo deep-learning
VARIANT ?= cpu
endif
PLATFORM_ARGS = $(if $(VARIANT),--variant $(VARIANT)) $(if $(PLATFORM),--platform $(PLATFORM))

.PHONY: setup setup-emulation images build test-images lint test list lock env bench bench-hackathon clean

setup:
	bash scripts/setup.sh

## qemu-user-static, binfmt-support and arch-test, for PLATFORM=linux/arm64 (not in `make setup`: CI needs none).
setup-emulation:
	bash scripts/setup-emulation.sh

## The main job: build and test every image of the matrix that can be built here (the debian flavor).
images: setup $(if $(PLATFORM),setup-emulation)
	$(VRE) build $(IMAGES) --flavor $(FLAVOR) $(PLATFORM_ARGS) --test

build: setup $(if $(PLATFORM),setup-emulation)
	$(VRE) build $(IMAGES) --flavor $(FLAVOR) $(PLATFORM_ARGS)

test-images:
	$(VRE) test $(IMAGES) --flavor $(FLAVOR) $(PLATFORM_ARGS)

## The linters (ruff, mypy --strict on src/vre, shellcheck on every shell script of images/, scripts/, .ci/).
lint:
	bash scripts/lint.sh

## The tests: the linters, then the factory's own tests in tiers (tests/unit, tests/integration, tests/e2e).
test: setup
	bash scripts/lint.sh
	$(PYTHON) -m pytest

list:
	$(VRE) list

lock:
	$(VRE) lock

## Reproduce an environment locally from its committed lock, e.g. make env ENV=deep-learning-cpu
env:
	$(VRE) env $(ENV)

## Benchmark (prints figures, never a test): per debian cpu image cold, warm and one-package rebuilds, size, update
## pull, start to JupyterLab ready, compat suite time; conda lock time. Parts: make bench BENCH="--no-cold --no-lock"
## Then large results through a hub (bench/bench_viz.py): a 2 GiB COG's tiles, a 4096² DEM's first 3D frame.
bench: setup
	$(PYTHON) bench/bench.py $(BENCH)
	$(PYTHON) bench/bench_viz.py $(BENCH_VIZ)
	$(MAKE) bench-hackathon

## 40 users spawned at once on one hub (deploy/jupyterhub-docker): spawn times, all ready, idle memory, failures
## (written to .vre/bench/hackathon.json). Another size: make bench-hackathon VRE_HACKATHON_USERS=20
bench-hackathon: setup
	VRE_TEST_HACKATHON=1 $(PYTHON) -m pytest tests/e2e/hub/test_hackathon.py -s -q

clean:
	rm -rf .vre
