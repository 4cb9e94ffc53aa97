"""What the tests (and the benchmarks in bench/) share: plain helpers, no tests.

Test modules import these from here, never from ``conftest`` or from one another.
"""
