#!/usr/bin/env bash
# Builds build/interop/otelcol with the OpenTelemetry Collector Builder,
# once: it is rebuilt only when the builder manifest changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILDER_VERSION=v0.165.0
out=build/interop
mkdir -p "$out/bin"
stamp="$out/manifest.sha256"
want=$( (cat tests/interop/builder-config.yaml; echo "$BUILDER_VERSION") | sha256sum | cut -d' ' -f1)
if [ -x "$out/otelcol" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if [ ! -x "$out/bin/builder" ]; then
  GOBIN="$PWD/$out/bin" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
fi
# The builder's own `go mod tidy` also resolves the components' *test*
# dependencies, some of which the module proxy here does not serve; a plain
# build resolves only what the Collector imports.
"$out/bin/builder" --config tests/interop/builder-config.yaml --skip-get-modules --skip-compilation
(cd "$out/dist" && GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o otelcol-spanguard .)
cp "$out/dist/otelcol-spanguard" "$out/otelcol"
echo "$want" > "$stamp"
