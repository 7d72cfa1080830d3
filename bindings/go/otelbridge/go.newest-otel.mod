// The bridge built and tested against the newest OpenTelemetry Go this
// project has (make test-go: go test -modfile=go.newest-otel.mod), where
// go.mod asks only for the oldest it needs (v1.46.0: a requirement here
// would be one of every user's module). Raise these with each release:
//   go get -modfile=go.newest-otel.mod go.opentelemetry.io/otel@vX ...sdk@vX ...trace@vX
//   go mod tidy -modfile=go.newest-otel.mod

module github.com/spanguard/spanguard/bindings/go/otelbridge

go 1.26.0

require (
	github.com/spanguard/spanguard/bindings/go v0.0.0
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/sdk v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel/log v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/spanguard/spanguard/bindings/go => ../
