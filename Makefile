# The two commands of a fresh machine: `make report` (the main job) and `make test`.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps report test bench

# GMP (built from source by rug's gmp-mpfr-sys) needs m4, which a fresh Debian lacks.
deps:
	@command -v m4 >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq m4; }

# The report at the default scale: reports/out/index.html and index.md.
report: deps
	cargo run --release -- report --scale default --out reports/out

# Every test (unit, property, integration, doc) in release mode.
test: deps
	PROPTEST_CASES=$${PROPTEST_CASES:-64} cargo test --release --workspace

# Criterion benches (with the numpy peer) and the report regenerated at the default scale.
bench: deps
	cargo bench --workspace
