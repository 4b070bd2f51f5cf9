# oneshot: every target is one line that calls a script in bin/. `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help install up down smoke logs ps test lint migrate bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

install: .venv/.installed ## Create .venv from the pinned requirements

.venv/.installed: requirements.txt requirements-dev.txt
	bin/install

up: ## Start the stack: Docker Compose if an engine answers, else local processes (writes .env once)
	bin/up

down: ## Stop what `make up` started
	bin/down

smoke: ## Check a running stack end to end (URLs from API_URL, ORCHESTRATOR_URL, PREVIEW_URL, WEB_URL)
	bin/smoke

logs: ## Follow the services' logs
	bin/logs

ps: ## Show what is running and whether it is healthy
	bin/ps

test: install ## Lint, then run every test suite against real PostgreSQL and gunicorn
	bin/test

lint: install ## ruff check and ruff format --check
	bin/lint

migrate: install ## Apply database migrations to DATABASE_URL (or the embedded database)
	bin/migrate

bench: install ## Run the benchmarks and print their tables
	bin/bench
