#!/usr/bin/env bash
# Starts the Collector on 127.0.0.1:4318, sends spans from the C emitter over
# http/protobuf and http/json, with and without gzip, and checks the
# Collector's file output holds exactly what was emitted.
set -euo pipefail
cd "$(dirname "$0")/../.."
emitter=${SPANGUARD_INTEROP_EMITTER:-build/tests/emit_spans}
out=build/interop/run
rm -rf "$out" && mkdir -p "$out"
export SPANGUARD_INTEROP_OUT="$PWD/$out/collector-output.jsonl"
build/interop/otelcol --config tests/interop/collector-config.yaml > "$out/collector.log" 2>&1 &
collector=$!
trap 'kill $collector 2>/dev/null; wait $collector 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/4318) 2>/dev/null; then break; fi
  kill -0 $collector 2>/dev/null || { cat "$out/collector.log"; exit 1; }
  sleep 0.1
done
status=0
for protocol in http/protobuf http/json; do
  for compression in none gzip; do
    label="$protocol/$compression"
    run_id="interop-$$-${protocol//\//_}-$compression"
    manifest="$out/manifest-${protocol//\//_}-$compression.json"
    "$emitter" --endpoint http://127.0.0.1:4318 --protocol "$protocol" --compression "$compression" \
      --run-id "$run_id" --manifest "$manifest" --count 40 --large 10
    python3 tests/interop/check_collector_output.py --label "$label" \
      --collector-output "$SPANGUARD_INTEROP_OUT" --manifest "$manifest" || status=1
  done
done
exit $status
