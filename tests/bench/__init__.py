"""`make bench`: scale, idle-cost, reaction and restart benchmarks of rollwise on the proving
ground (tests/harness). `python -m tests.bench.run --n 100,500` writes
`tests/bench/results/<timestamp>.json` (DESIGN.md §5) and prints a table."""
