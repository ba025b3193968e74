# mailmig tasks. `.ci/just <task>` installs just when it is missing.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build the mailmig binary into ./bin.
build:
    go build -o bin/mailmig ./cmd/mailmig

# Runs `lint` first; then installs (testdata/peers/install.sh, as root) and
# starts the real servers (or reuses a `just peers-up` set), runs go test in
# random test order (-shuffle=on: the seed is printed to rerun an order),
# stops what it started. Every test, the real servers included, then every
# fuzz target for 1 s (MAILMIG_FUZZTIME=0 skips that).
test: lint
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    s=$EPOCHREALTIME rc=0
    go test -count=1 -shuffle=on ${MAILMIG_GOTEST_FLAGS:-} ./... || rc=$?
    awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN{printf "go test took %.1fs\n", b-a}'
    # The proxy is where goroutines meet (flips, drains, STARTTLS, bridges):
    # its tests also run under the race detector on every run (the whole
    # suite with -race: MAILMIG_GOTEST_FLAGS=-race just test).
    if [[ "${MAILMIG_GOTEST_FLAGS:-}" != *-race* ]]; then
        s=$EPOCHREALTIME
        go test -race -count=1 -shuffle=on ./proxy/... || rc=$?
        go test -race -count=1 -shuffle=on -run 'Proxy' ./cmd/mailmig || rc=$?
        awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN{printf "go test -race (proxy) took %.1fs\n", b-a}'
    fi
    # Every fuzz target for a second (MAILMIG_FUZZTIME, default 1s;
    # 0 skips), so that a crash a fuzzer finds turns the run red; the
    # hostile suite (cmd/mailmig hostile*_test.go) ran with go test above.
    if [[ "${MAILMIG_FUZZTIME:-1s}" != 0 ]]; then
        "{{just_executable()}}" fuzz "${MAILMIG_FUZZTIME:-1s}" || rc=$?
    fi
    exit $rc

# examples/quickstart/demo.sh (docs/demo.md): installs and starts the real
# servers, seeds mail, runs the proxy, then mailmig plan and apply through
# staging, catch-up and cut-over while mail arrives and an IMAP client follows
# the flip; prints the check and the journal. `-keep` leaves the servers up.
# The main job on the ready-made quickstart example (well under a minute).
demo *args:
    bash examples/quickstart/demo.sh {{args}}

# Fast in-process tests only (integration tests skip in -short mode).
test-unit:
    go test -short -count=1 -shuffle=on ./...

# Static checks, no servers needed (`test` runs them first): gofmt, go vet,
# staticcheck (pinned, its default checks: none is switched off), the import
# layering tests, and go.mod/go.sum tidiness (`go mod tidy -diff` prints
# the difference and fails when they are not tidy).
lint:
    #!/usr/bin/env bash
    set -euo pipefail
    unformatted=$(gofmt -l .)
    if [[ -n "$unformatted" ]]; then
        echo "gofmt -w needed on:"; echo "$unformatted"; exit 1
    fi
    go vet ./...
    go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
    go test -count=1 -run '^(TestImports|TestImportLayering)$' ./plan ./engine
    go mod tidy -diff

# Prints the environment that makes `go test` reuse the set; state in .peers/.
# Install and start real servers at port offset OFFSET for manual runs.
peers-up offset="0":
    .ci/peers install
    .ci/peers up {{offset}}

# Stop the set started by `just peers-up`.
peers-down:
    .ci/peers down

# Benchmark: import+export Dovecot -> archive -> Cyrus JMAP vs mbsync IMAP->IMAP
# into Cyrus, same run, same corpus (MAILMIG_BENCH_MESSAGES, default 3000 with a
# 25 MiB message), the export alone vs Cyrus's own IMAP APPEND of the corpus,
# plus the no-change re-run. Figures: docs/export.md.
bench-export:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    go test -count=1 -run '^$' -bench EndToEnd -benchtime 1x -timeout 60m ./vandelay/targets/jmap

# Benchmark the IMAP proxy in one run: sessions/s through mailmig's proxy vs
# direct Dovecot vs Dovecot's proxy vs nginx mail, bulk FETCH throughput, and
# RSS per idle connection (5,000 open). Figures: docs/proxy.md.
bench-proxy *args:
    #!/usr/bin/env bash
    set -euo pipefail
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    bin=$(mktemp -d)/mailmig
    go build -o "$bin" ./cmd/mailmig
    go run ./proxy/internal/proxybench -mailmig "$bin" {{args}}

# Benchmark: LMTP deliveries/s through the proxy vs direct to Dovecot, and
# JMAP requests/s through the proxy vs direct to Cyrus. Figures:
# docs/proxy-smtp-http.md.
bench-proxy-smtp:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    go test -count=1 -run '^$' -bench 'LMTP|JMAP|Overhead' -benchtime 5s ./proxy/smtp ./proxy/httpproxy

# Benchmark: full IMAP import of the generated account (3000 messages with a
# 25 MiB one; MAILMIG_BENCH_MESSAGES) by the real command, side by side with a
# raw go-imap FETCH of the same account over the same connections and with
# mbsync copying it into a local Maildir; the no-change re-run; peak RSS, also
# for an account with a 100 MiB message. Figures: docs/import.md.
bench-import:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    go test -count=1 -run '^$' -bench Import -benchtime 1x -timeout 30m ./vandelay/sources/imap

# Import of the generated 3,000-message account from Cyrus's JMAP, its
# no-change catch-up (time and HTTP requests), and mbsync reading the same
# account over Cyrus's IMAP in the same run (docs/import.md).
bench-import-jmap:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    go test -count=1 -run '^$' -bench ImportJMAP -benchtime 1x -timeout 30m ./vandelay/sources/jmap

# Benchmark: how long a cut-over keeps an account frozen (MAILMIG_BENCH_FREEZE
# messages, default 3000, plus 10 new since the last pass), the old way (settle
# delay, whole verify in the freeze) and the new (acknowledged freeze, verify
# warmed before it), same run, with the proxy in front. Figures: docs/engine.md.
bench-freeze:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    MAILMIG_BENCH_FREEZE=${MAILMIG_BENCH_FREEZE:-3000} go test -count=1 -run '^TestBenchFreezeTime$' -v -timeout 30m ./cmd/mailmig | grep -E 'seeded|staged|FREEZE TIME|phases while frozen|^(ok|FAIL|---)'

# IMAP export (vandelay export-imap) of 1,000 messages Dovecot → archive → Cyrus, and its no-change re-run.
bench-export-imap:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    MAILMIG_BENCH_EXPORT_IMAP=${MAILMIG_BENCH_EXPORT_IMAP:-1000} go test -count=1 -run '^TestBenchExportIMAP$' -v -timeout 30m ./vandelay/targets/imap | grep -E 'export-imap:|^(ok|FAIL|---)'

# Benchmark: the no-change re-run of an account with 2,000 events, 2,000
# contacts (MAILMIG_BENCH_ITEMS) and 500 files in 20 folders, through the
# executor's steps: import + export (a catch-up pass) and verify (what a
# cut-over adds), Cyrus CalDAV/CardDAV and Apache WebDAV as the source, a
# second Cyrus account and Apache tree as the target; per step in seconds.
# Loading and the first export take minutes. Figures: docs/export.md.
bench-kinds:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    uptime
    go test -count=1 -run '^$' -bench NoChangeAllKinds -benchtime 3x -timeout 40m ./engine/executor
    uptime

# Every benchmark.
bench: bench-import bench-import-jmap bench-export bench-proxy bench-proxy-smtp bench-plan bench-engine bench-freeze bench-export-imap bench-kinds bench-workers

fmt:
    gofmt -w .

# STYLE.md's name for the static checks.
alias check := lint

# Rewrite the golden files (plan diagnostics and models, CLI scripts) after an intended change; review the diff.
update-golden:
    go test ./plan -run 'TestInvalidPlans|TestValidPlans|TestDocsUpToDate' -update
    go test ./cmd/mailmig -run TestScripts -update

# Run every fuzz target in the tree for TIME each (default 10s): every
# `func Fuzz…` in a _test.go file outside testdata/, so new targets join by
# themselves. Each package's instrumented test binary is built once and
# runs each of its targets (one link per package, not per target); the
# corpus is go test's own ($GOCACHE/fuzz). A crash (the failing input is
# saved under the package's testdata/fuzz/, as with go test -fuzz) or a
# package that does not build fails the recipe, after all targets ran.
fuzz time="10s":
    #!/usr/bin/env bash
    set -euo pipefail
    s=$EPOCHREALTIME failed=() n=0
    bins=$(mktemp -d); trap 'rm -rf "$bins"' EXIT
    cache=$(go env GOCACHE)/fuzz
    while read -r dir; do
      targets=$(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/')
      bin=$bins/$(echo "$dir" | tr -c 'A-Za-z0-9\n' _).test
      pkg=$(go list "$dir")
      echo "== $dir: build"
      if ! go test -c -o "$bin" -fuzz "^$(head -n1 <<<"$targets")\$" "$dir"; then
        failed+=("$dir (build)")
        continue
      fi
      for f in $targets; do
        echo "== $dir $f"
        n=$((n+1))
        # A short -fuzztime can end while the engine is still minimising a
        # new interesting input; the run then fails with only "context
        # deadline exceeded" and no failing input (golang/go#75804, a race in
        # the fuzz coordinator of Go 1.26, fixed in 1.27). A crash always writes its input ("Failing input written
        # to testdata/fuzz/..."): that, or any other failure, turns the run
        # red; the flake is retried once and then only reported.
        for try in 1 2; do
          out=$( (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^$f\$" -test.fuzztime {{time}} -test.fuzzcachedir "$cache/$pkg") 2>&1 ) && { echo "$out"; break; }
          echo "$out"
          if grep -q 'Failing input written to' <<<"$out" || ! grep -q 'context deadline exceeded' <<<"$out"; then
            failed+=("$dir $f"); break
          fi
          if [ "$try" = 2 ]; then echo "   warning: $f ended by its deadline twice, no failing input"; break; fi
          echo "   (deadline ended the run while minimising, no failing input: running $f once more)"
        done
      done
    done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '/testdata/' | xargs -n1 dirname | sort -u)
    awk -v a="$s" -v b="$EPOCHREALTIME" -v n="$n" 'BEGIN{printf "fuzzing %d targets took %.1fs\n", n, b-a}'
    if ((${#failed[@]})); then
      printf 'FAIL fuzz: %s\n' "${failed[@]}"
      exit 1
    fi

# Load a generated plan of 100,000 accounts (10 CSV files, 10 waves).
bench-plan:
    go test ./plan -run '^$' -bench Load100k -benchmem -benchtime 3x

# Benchmark the engine: fsynced journal append at 1k and 100k records, Diff of
# 100,000 accounts, and "mailmig plan -refresh=false" (text, -json, -markdown)
# over a generated migration of 100,000 accounts (CSV plan, 770k-record journal
# with snapshot, 20k routes). Figures: docs/engine.md.
bench-engine:
    #!/usr/bin/env bash
    set -euo pipefail
    go test -count=1 -run '^$' -bench Append -benchtime 2000x ./engine/state
    go test -count=1 -run '^$' -bench Diff100k -benchtime 5x -benchmem ./engine
    go test -count=1 -run '^$' -bench Overview -benchtime 10x ./vandelay/archive
    work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
    go build -o "$work/mailmig" ./cmd/mailmig
    go run ./engine/internal/benchgen -accounts 100000 -dir "$work/m"
    cd "$work/m"
    t=(); [ -x /usr/bin/time ] && t=(/usr/bin/time -f "  elapsed %e s, user %U s, sys %S s, max RSS %M KB")
    for args in "" "-json" "-markdown"; do
      echo "mailmig plan -refresh=false $args"
      "${t[@]}" "$work/mailmig" plan -refresh=false $args > "$work/out"
      echo "  output $(wc -c < "$work/out") bytes"
    done

# Apply workers: accounts staged per minute by one "apply -worker" and by two
# on the same generated corpus (MAILMIG_BENCH_WORKERS accounts, default 12, of
# MAILMIG_BENCH_WORKER_MESSAGES messages, default 100), Dovecot → Cyrus, state
# and routes in PostgreSQL. Figures: docs/fleet.md.
bench-workers:
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/peers install
    trap '.ci/peers down-temp' EXIT
    peers_env=$(.ci/peers up-temp)
    eval "$peers_env"
    uptime
    MAILMIG_BENCH_WORKERS=${MAILMIG_BENCH_WORKERS:-12} go test -count=1 -run '^TestBenchWorkers$' -v -timeout 30m ./cmd/mailmig | grep -E 'seeded|WORKERS|^(ok|FAIL|---)'
    uptime
