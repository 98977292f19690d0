# The two commands of the README. Both do all set-up themselves on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[test,metrics,ui,classify]'
	$(PY) -m pip install -q -e '.[faces]' || echo "warning: no dlib-bin wheel for this platform: the face tests will skip"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/ganprior demo --out out/demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) out
