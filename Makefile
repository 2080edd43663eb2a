# The two commands that matter: `make up` and `make test`. Both set up what they need.
PYTHON ?= python3.11
TORCH_VERSION ?= 2.13.0
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test check lint format typecheck bench bench-embedding bench-overload bench-documents bench-document-layout bench-integration bench-discovery bench-llm bench-gateway bench-retrieval fuzz faults clean install protos

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, exactly this CPU build: anything else pulls a multi-GB CUDA wheel
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev,models,fastembed,documents,gpu,integration,gateway,apps,retrieval,http2]'
	# FastEmbed without its huggingface-hub<2 cap (see the fastembed extra in pyproject.toml)
	$(BIN)/python -m pip install --quiet --no-deps 'fastembed>=0.7,<0.10'
	touch $(STAMP)

install: $(STAMP)

## up: set up and run the main job: the model services on this machine (CPU, and the
## GPU service on the NVML stand-in unless told otherwise), the integration service
## (:8005, SQLite in .servicegrid/), the gateway (:8000) and seed 002's users, questions
## and API gateway (:8001-8003, gRPC :50061-50063), with live status
up: $(STAMP)
	bash tools/ensure_program.sh "OCR for scanned pages" tesseract tesseract-ocr tesseract-ocr-eng
	SERVICEGRID_DEVICE=$${SERVICEGRID_DEVICE:-cpu} SERVICEGRID_NVML=$${SERVICEGRID_NVML:-standin} \
		$(BIN)/servicegrid up

## test: set up and run the whole test suite
test: $(STAMP)
	bash tools/ensure_postgres.sh
	bash tools/ensure_etcd.sh
	bash tools/ensure_program.sh "OCR for scanned pages" tesseract tesseract-ocr tesseract-ocr-eng
	$(BIN)/python -m pytest

## check: lint, format check, strict type check
check: $(STAMP)
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools
	$(BIN)/mypy
	$(BIN)/python tools/gen_protos.py --check

## protos: regenerate the Python code of src/servicegrid/proto/*.proto
protos: $(STAMP)
	$(BIN)/python tools/gen_protos.py

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples tools
	$(BIN)/ruff format src tests bench examples tools

## bench: run the resilience and HTTP benchmarks and print their tables
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

## bench-embedding: the embedding service on each backend (torch, ONNX fp32, ONNX int8) vs
## in-process encode and vs Infinity's torch and optimum engines (minutes; builds Infinity's venvs once)
bench-embedding: $(STAMP)
	$(BIN)/python bench/bench_embedding.py

## bench-overload: goodput, refusal time and memory of the embedding service under overload (minutes)
bench-overload: $(STAMP)
	$(BIN)/python bench/bench_overload.py

## bench-integration: 3-step durable executions per second and per-step overhead (SQLite, PostgreSQL)
bench-integration: $(STAMP)
	bash tools/ensure_postgres.sh
	$(BIN)/python bench/bench_integration.py

## faults: SIGKILL the integration service 100 times during executions, on SQLite and PostgreSQL
faults: $(STAMP)
	bash tools/ensure_postgres.sh
	$(BIN)/python tools/fault_integration.py --kills 100
	$(BIN)/python tools/fault_integration.py --kills 100 --database postgresql

## fuzz: 5,000 schemathesis requests against the gateway's OpenAPI (no 5xx but the documented),
## 5,000 against the users, questions and API gateway services (no 5xx at all), and 2,000
## against the orchestrator's endpoints
fuzz: $(STAMP)
	$(BIN)/python tools/fuzz_gateway.py --requests 5000
	$(BIN)/python tools/fuzz_apps.py --requests 5000
	$(BIN)/python tools/fuzz_orchestrator.py --requests 2000

## bench-retrieval: the orchestrator's retrieval quality on bench/data/retrieval (BM25, dense,
## hybrid, hybrid + rerank; fusions scored on held-out queries; other settings), its query
## latency and its indexing throughput (about 30 minutes on 2 cores)
bench-retrieval: $(STAMP)
	$(BIN)/python bench/bench_retrieval.py --variants
	$(BIN)/python bench/bench_orchestrator_speed.py

## bench-gateway: /v1/embeddings through the gateway vs the gRPC API directly vs Infinity
bench-gateway: $(STAMP)
	$(BIN)/python bench/bench_gateway.py

## bench-document-layout: reading order, tables, running lines, footnotes and OCR on a generated
## ground-truth corpus, against pdfplumber, pdfminer.six and docling-parse
bench-document-layout: $(STAMP)
	bash tools/ensure_program.sh "OCR for scanned pages" tesseract tesseract-ocr tesseract-ocr-eng
	$(BIN)/python bench/bench_document_layout.py

## bench-documents: the document service vs its engine in-process and vs pdfplumber
bench-documents: $(STAMP)
	$(BIN)/python bench/bench_documents.py

## bench-discovery: discovery lookups (cached, each backend afresh) and balancing overhead
bench-discovery: $(STAMP)
	bash tools/ensure_etcd.sh
	$(BIN)/python bench/bench_discovery.py

## bench-llm: the distributed LLM client's overhead vs a direct httpx call, and its balancing
bench-llm: $(STAMP)
	$(BIN)/python bench/bench_llm_client.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
