module github.com/otelpower/otelcol-guard

go 1.24
