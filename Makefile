# cinestrain: one set-up step shared by `make run` and `make test`.
# Works on a fresh machine: creates .venv, installs the CPU torch wheel, the package and
# the Debian tools the tests use (dcmtk, orthanc, dicom3tools, openssl, systemd) when they are
# missing: under CI=true a test whose tool is missing fails (tests/conftest.py).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
DEBS   := dcmtk orthanc dicom3tools openssl systemd
CONFIG ?=

# The local OHIF viewer (`make viewer`) and its browser test (in `make test`): Debian's
# Orthanc DICOMweb plugin, nginx and Chromium, and OHIF's prebuilt dist/ from the npm
# package @ohif/app (pinned, integrity-checked, installed under viewer/ohif/, not committed).
OHIF_VERSION   := 3.13.2
OHIF_INTEGRITY := sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
OHIF_DIR       := viewer/ohif/$(OHIF_VERSION)

.PHONY: setup run test lint bench clean debs viewer viewer-setup viewer-debs

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
	command -v openssl  >/dev/null || missing="$$missing openssl"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

viewer-debs:
	@missing=""; \
	test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || missing="$$missing orthanc-dicomweb"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# OHIF's dist/ only: `npm pack` fetches the one tarball (no dependency tree, no scripts run).
$(OHIF_DIR)/index.html: | viewer-debs
	rm -rf viewer/ohif/.download && mkdir -p viewer/ohif/.download
	cd viewer/ohif/.download && npm pack --silent "@ohif/app@$(OHIF_VERSION)" >/dev/null
	$(PYTHON) -c 'import base64, hashlib, sys; d = open(sys.argv[1], "rb").read(); \
	  got = "sha512-" + base64.b64encode(hashlib.sha512(d).digest()).decode(); \
	  sys.exit(0 if got == sys.argv[2] else "@ohif/app tarball integrity mismatch: " + got)' \
	  viewer/ohif/.download/ohif-app-$(OHIF_VERSION).tgz "$(OHIF_INTEGRITY)"
	tar -xzf viewer/ohif/.download/ohif-app-$(OHIF_VERSION).tgz -C viewer/ohif/.download
	rm -rf $(OHIF_DIR) && mv viewer/ohif/.download/package/dist $(OHIF_DIR)
	rm -rf viewer/ohif/.download

viewer-setup: setup viewer-debs $(OHIF_DIR)/index.html

# `make viewer`: OHIF + Orthanc (DICOMweb) on loopback, in the foreground (Ctrl-C stops).
VIEWER_ARGS ?=
viewer: viewer-setup
	$(BIN)/cinestrain view $(VIEWER_ARGS)

# `make run`: the node in the foreground on the embedded defaults (loopback only), also
# accepting the calling AE titles in ALLOW_CALLERS (DCMTK storescu/echoscu defaults) so that
# `storescu 127.0.0.1 11112 FILES` works at once. With CONFIG=PATH only that file decides.
ALLOW_CALLERS ?= STORESCU ECHOSCU
run: setup
	$(BIN)/cinestrain serve $(if $(CONFIG),--config $(CONFIG),$(foreach ae,$(ALLOW_CALLERS),--allow-caller $(ae)))

test: setup viewer-setup
	$(BIN)/ruff check .
	bash .ci/pytest.sh $(BIN)/python

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache viewer/ohif
