module github.com/spanguard/spanguard/bindings/go

go 1.22
