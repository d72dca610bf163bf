# The two commands of the quick start. Both set up what they need.
.PHONY: run test bench load

## Build the plugins and the weft binary, then run it.
run:
	scripts/run.sh

## Build the guest components and run the whole test suite.
test:
	scripts/test.sh

## Benchmarks (release): the host (compile, warm start, per-invocation cost, throughput), then the engine (fibo workloads, run throughput, per-step overhead, memory).
bench:
	scripts/setup.sh && scripts/build-guests.sh && cargo bench --locked -p weft-host --bench host && cargo bench --locked -p weft-engine --bench engine

## Load test of the REST API (release, loopback, wrk): GET of a run and starting one-step runs; prints a Markdown table.
load:
	scripts/load.sh
