# mailmig tasks. `.ci/just <task>` installs just when it is missing.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build the mailmig binary into ./bin.
build:
    go build -o bin/mailmig ./cmd/mailmig

# Every test, the real servers included (installs and starts them).
test:
    go vet ./...
    go test -count=1 ./...

# Fast in-process tests only.
test-unit:
    go test -short -count=1 ./...

fmt:
    gofmt -w .

lint:
    test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }
    go vet ./...
