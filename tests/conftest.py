"""Test-wide settings: verify the IR after every pass, and compile at O0/O1 unless a test
asks for a level (O2/O3 cost ~10x the compile time and are exercised explicitly)."""

import os

os.environ.setdefault("LLDIFF_VERIFY", "1")
