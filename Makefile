# The two commands of the README. Everything they need (npm packages, Chromium for the browser
# tests) is installed by them when missing.

.PHONY: run test web test-rust test-web

# Start the whole system with the embedded defaults: SQLite under ./data, in-process fan-out,
# http://127.0.0.1:8000 with the web client.
run: web
	cargo run --release -p parkmate-server -- serve

# Every test: Rust (unit + integration over real sockets), the web client's unit tests, and the
# end-to-end browser suite.
test:
	./scripts/test-all

web:
	./scripts/web-build
