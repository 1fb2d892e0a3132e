"""Local tooling for tests, the demo and benchmarks: real servers on loopback, never mocks."""
