# Shortcuts for the two commands in README.md.
.PHONY: serve test bench
serve:
	scripts/serve.sh
test:
	scripts/test.sh
bench:
	scripts/setup.sh tiny.en base && cargo run --release --bin bench
