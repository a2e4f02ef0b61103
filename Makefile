# cinestrain: one set-up step shared by `make run` and `make test`.
# Works on a fresh machine: creates .venv, installs the CPU torch wheel, the package and
# the Debian tools the tests use (dcmtk, orthanc, dicom3tools) when they are missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
DEBS   := dcmtk orthanc dicom3tools
CONFIG ?=

.PHONY: setup run test lint bench clean debs

setup: $(VENV)/.stamp-install debs

$(VENV)/.stamp-install: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU wheel first, so that nothing pulls a CUDA build of torch.
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH)"
	touch $@

debs:
	@missing=""; \
	command -v storescu >/dev/null || missing="$$missing dcmtk"; \
	command -v Orthanc  >/dev/null || missing="$$missing orthanc"; \
	command -v dciodvfy >/dev/null || missing="$$missing dicom3tools"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# `make run`: the node in the foreground on the embedded defaults (loopback only), also
# accepting the calling AE titles in ALLOW_CALLERS (DCMTK storescu/echoscu defaults) so that
# `storescu 127.0.0.1 11112 FILES` works at once. With CONFIG=PATH only that file decides.
ALLOW_CALLERS ?= STORESCU ECHOSCU
run: setup
	$(BIN)/cinestrain serve $(if $(CONFIG),--config $(CONFIG),$(foreach ae,$(ALLOW_CALLERS),--allow-caller $(ae)))

test: setup
	$(BIN)/ruff check .
	bash .ci/pytest.sh $(BIN)/python

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
