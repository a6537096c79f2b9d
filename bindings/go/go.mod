module github.com/libresilience/libresilience/bindings/go

go 1.19
