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
# With --skip-get-modules this builder writes no go.mod: write one naming the
# components and the core modules main.go imports, at the versions the
# builder's manifest records (components.go); the build resolves the rest.
if [ ! -f "$out/dist/go.mod" ]; then
  cat > "$out/dist/go.mod" <<'GOMOD'
module otelcol-spanguard

go 1.25

require (
	github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v0.165.0
	go.opentelemetry.io/collector/confmap/provider/envprovider v1.71.0
	go.opentelemetry.io/collector/confmap/provider/fileprovider v1.71.0
	go.opentelemetry.io/collector/confmap/provider/httpprovider v1.71.0
	go.opentelemetry.io/collector/confmap/provider/httpsprovider v1.71.0
	go.opentelemetry.io/collector/confmap/provider/yamlprovider v1.71.0
	go.opentelemetry.io/collector/otelcol v0.165.0
	go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0
	go.opentelemetry.io/collector/service v0.165.0
)
GOMOD
fi
(cd "$out/dist" && GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o otelcol-spanguard .)
cp "$out/dist/otelcol-spanguard" "$out/otelcol"
echo "$want" > "$stamp"
