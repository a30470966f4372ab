#!/usr/bin/env bash
# What CI can check of the packaging without pulling container images or running systemd:
# the systemd unit with `systemd-analyze verify` (against the binary just built), the compose
# file with `docker-compose config`, and that the Dockerfile builds the way the README says.
# A tool that is missing is reported and its check skipped, unless PACKAGING_CHECKS=require.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="${FEEDKEEPER_BINARY:-$PWD/target/debug/feedkeeper}"
failed=0
missing() {
    if [ "${PACKAGING_CHECKS:-}" = require ]; then
        echo "FAIL: $1 is not installed" >&2
        failed=1
    else
        echo "skipped: $1 is not installed"
    fi
}
fail() { echo "FAIL: $*" >&2; failed=1; }

# 1. The unit, pointed at the binary built here (verify checks that ExecStart exists).
if command -v systemd-analyze >/dev/null 2>&1; then
    [ -x "$binary" ] || { echo "no binary at $binary: build first (cargo build)" >&2; exit 1; }
    dir="$(mktemp -d)"
    trap 'rm -rf "$dir"' EXIT
    sed "s|/usr/local/bin/feedkeeper|$binary|" packaging/feedkeeper.service > "$dir/feedkeeper.service"
    # verify prints problems and exits non-zero on errors; warnings go to stderr too.
    if ! out="$(systemd-analyze verify "$dir/feedkeeper.service" 2>&1)" || [ -n "$out" ]; then
        fail "systemd-analyze verify: $out"
    else
        echo "ok: packaging/feedkeeper.service verifies"
    fi
    for key in DynamicUser=yes ProtectSystem=strict StateDirectory=feedkeeper NoNewPrivileges=yes; do
        grep -qx "$key" packaging/feedkeeper.service || fail "the unit lacks $key"
    done
else
    missing systemd-analyze
fi

# 2. The compose file's syntax and references (its token-key variable is required).
if command -v docker-compose >/dev/null 2>&1; then
    if FEEDKEEPER_TOKEN_KEY=check docker-compose -f compose.yaml config -q; then
        echo "ok: compose.yaml is valid"
    else
        fail "docker-compose config rejected compose.yaml"
    fi
    services="$(FEEDKEEPER_TOKEN_KEY=check docker-compose -f compose.yaml config --services | sort | tr '\n' ' ')"
    [ "$services" = "bucket minio node-a node-b postgres " ] || fail "compose services: $services"
    if FEEDKEEPER_TOKEN_KEY= docker-compose -f compose.yaml config -q 2>/dev/null; then
        fail "compose.yaml starts without a token key"
    fi
    # Each node's environment, as compose resolves it, is a configuration feedkeeper accepts:
    # `ready` loads and checks it before it asks anything (an unreachable address is fine).
    if ! python3 -c 'import yaml' 2>/dev/null; then
        missing "python3 with PyYAML"
    elif [ ! -x "$binary" ]; then
        fail "no binary at $binary to check the compose environment with (cargo build first)"
    else
        key="$("$binary" generate-key)"
        for node in node-a node-b; do
            env_args="$(FEEDKEEPER_TOKEN_KEY="$key" docker-compose -f compose.yaml config \
                | python3 -c 'import sys, yaml, shlex
env = yaml.safe_load(sys.stdin)["services"][sys.argv[1]]["environment"]
# A pass-through entry (no value) would reach the node empty.
print(" ".join(shlex.quote(k + "=" + ("" if v is None else str(v))) for k, v in env.items()))' "$node")"
            if ! out="$(eval "env -i $env_args \"$binary\" ready --url http://127.0.0.1:9/readyz" 2>&1)" \
                && ! grep -q "no answer from" <<<"$out"; then
                fail "feedkeeper refuses $node's configuration in compose.yaml: $out"
            fi
        done
    fi
else
    missing docker-compose
fi

# 3. The Dockerfile builds as the README says, runs as a user, keeps /data and checks /readyz.
build_line="cargo build --release --locked -p feedkeeper"
# An indented line of a RUN instruction (not a comment).
grep -Eq "^[[:space:]]+$build_line" Dockerfile || fail "the Dockerfile does not run '$build_line'"
grep -q "$build_line" README.md || fail "the README does not say '$build_line'"
for package in cmake nasm; do
    grep -q "apt-get install.*$package" Dockerfile || fail "the Dockerfile does not install $package"
    grep -q "apt-get install.*$package" README.md || fail "the README does not name $package"
done
grep -Eq '^FROM .* AS build$' Dockerfile || fail "the Dockerfile is not multi-stage"
grep -Eq '^USER feedkeeper$' Dockerfile || fail "the image does not run as a user"
grep -Eq '^VOLUME /data$' Dockerfile || fail "the image has no /data volume"
grep -q 'CMD \["feedkeeper", "ready"\]' Dockerfile || fail "the health check does not ask /readyz"
"$binary" ready --help >/dev/null || fail "the binary has no 'ready' command for the health check"
[ "$failed" = 0 ] && echo "ok: the Dockerfile matches the README"
exit "$failed"
