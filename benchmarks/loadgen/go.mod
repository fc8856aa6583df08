module tunelake/benchmarks/loadgen

go 1.22
