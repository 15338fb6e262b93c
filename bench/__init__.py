"""Sealdrop's benchmarks: throughput, CPU, memory and latency against same-run references."""
