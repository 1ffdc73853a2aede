# Two commands for a newcomer: `make run` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1
# Rasa and TensorFlow: no telemetry, quiet logs, never reach out.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export HF_HUB_OFFLINE := 1

# Python 3.10 (Rasa 3.6 needs < 3.11): the first candidate that really runs 3.10 (a pyenv shim
# may exist and still fail).
PYTHON310 ?= $(shell for c in python3.10 /root/.pyenv/versions/3.10.*/bin/python3.10 $$HOME/.pyenv/versions/3.10.*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	$$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1 && { command -v $$c; break; }; done)

.PHONY: help setup lock import train run run-prod test lint format bench stock-model eval eval-test clean browser system-packages

RASA := $(VENV)/bin/rasa
MODEL := models/tthc.tar.gz
# What the model is trained from: retrain only when one of these changed.
TRAIN_INPUTS := config.yml domain.yml $(shell find data bot/nlu procedures_db/vocabulary -type f \( -name '*.yml' -o -name '*.py' \) 2>/dev/null)

help:
	@echo "make run     - set up, import procedures, train if stale, start everything"
	@echo "make test    - the whole test suite"
	@echo "make setup | import | train | bench | stock-model | eval | lint | format | lock | clean"

$(STAMP): requirements.lock
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (Rasa 3.6 needs it): install it, or set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25" wheel
	$(PY) -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

setup: $(STAMP)

# Re-resolve requirements.in into exact versions (needs network access to PyPI).
lock: $(STAMP)
	$(PY) -m pip install --quiet -r requirements.in
	$(PY) -m pip freeze --exclude-editable > requirements.lock

# umask 077: files under var/ are readable by their owner only (conversations, logs, secrets).
import: setup
	umask 077 && $(PY) -m procedures_db import

$(MODEL): $(TRAIN_INPUTS) | $(STAMP)
	$(RASA) train --config config.yml --domain domain.yml --data data --out models --fixed-model-name tthc
	@touch $(MODEL)

# The procedure resolver's ranking model (procedures_db/resolver): learned from the question sets
# in tests/data, the NLU data and the imported records, in seconds.
DB := var/procedures.sqlite3
RESOLVER := models/resolver.json
RESOLVER_INPUTS := $(shell find procedures_db tests/data data/nlu -type f \( -name '*.py' -o -name '*.yml' \) 2>/dev/null)

$(DB): | $(STAMP)
	umask 077 && $(PY) -m procedures_db import

$(RESOLVER): $(RESOLVER_INPUTS) | $(STAMP) $(DB)
	$(PY) -m procedures_db.resolver train

# Which fact a message asks (procedures_db.asked): learned from the same sets, in about 40 s.
ASKED := models/asked.json

$(ASKED): $(RESOLVER_INPUTS) | $(STAMP)
	$(PY) -m procedures_db.asked train

train: $(MODEL) $(RESOLVER) $(ASKED)

run: import train
	$(PY) scripts/stack.py

# Production profile (docs/production.md): PostgreSQL + Redis, two Rasa replicas behind nginx.
# Needs RASA_API_TOKEN in the environment; other settings come from deploy/prod.env. Listens on
# 127.0.0.1 unless told otherwise: make run-prod PROD_ARGS="--public-host 0.0.0.0".
run-prod: setup train
	$(PY) scripts/prod.py --env-file deploy/prod.env $(PROD_ARGS)

# Debian packages the suite and `make run-prod` need, installed when missing (a fresh machine):
# nginx (production profile), Chromium (browser tests; a browser download is impossible here),
# PostgreSQL and Redis (production stores; the tests talk to the servers on their standard ports).
SYSTEM_PACKAGES := nginx chromium postgresql redis-server
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

browser: system-packages

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup system-packages train
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(RASA) data validate --domain domain.yml --data data --config config.yml
	$(RASA) test core --stories tests/stories --model $(MODEL) --out results/core --fail-on-prediction-errors
	$(PY) -m pytest -q

# The peer of the throughput benchmark: `rasa init`'s pipeline and policies
# (scripts/default_config.yml) trained on the same data. STOCK_EPOCHS=10 shortens its training on
# a slow machine (a message's cost does not depend on it; BENCHMARKS.md says which was used).
STOCK_MODEL := models/stock/stock.tar.gz
STOCK_EPOCHS ?=
$(STOCK_MODEL): scripts/default_config.yml $(TRAIN_INPUTS) | $(STAMP)
	$(PY) scripts/bench_throughput.py --train-stock $(if $(STOCK_EPOCHS),--stock-epochs $(STOCK_EPOCHS))
	@touch $(STOCK_MODEL)

stock-model: $(STOCK_MODEL)

# Search quality/latency and import time, one Rasa process's throughput (closed-loop citizens:
# ours, the stock pipeline, the production profile; ~8 min, BENCH_ARGS for other counts and
# durations), the staff API under 20 clients, the production profile under 100 simulated
# citizens (1 and 2 replicas; ~7 min), and a longer fuzz run.
bench: import train $(STOCK_MODEL)
	$(PY) -m procedures_db.bench
	$(PY) scripts/bench_throughput.py --json results/throughput.json $(BENCH_ARGS)
	$(PY) scripts/bench_api.py
	$(PY) scripts/load_test.py --json results/load.json
	FUZZ_EXAMPLES=2000 $(PY) -m pytest -q tests/test_fuzz_inputs.py tests/test_fuzz_webapp.py tests/test_fuzz_schemathesis.py

# Resolver figures on the dev parts, in-process and through the running bot, then NLU and
# end-to-end figures, ours beside Rasa's default pipeline (trains both; ~15 min here).
eval: import train
	$(PY) -m procedures_db.resolver eval --part dev --json results/resolver-dev.json
	$(PY) scripts/eval_bot.py --start-stack --part dev --json results/bot-dev.json
	$(PY) scripts/eval.py

# The frozen test parts of the real questions and conversations: run once, when every choice is
# made (BENCHMARKS.md records the run). Prints the whole-record BM25 baseline beside the resolver.
eval-test: import train
	$(PY) -m procedures_db.resolver eval --part test --json results/resolver-test.json
	$(PY) scripts/eval_bot.py --start-stack --part test --json results/bot-test.json

clean:
	rm -rf var models results .pytest_cache
