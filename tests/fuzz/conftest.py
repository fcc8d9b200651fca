import os
import sys

# The generator lives in tests/fuzz/fuzzlib; regression tests under regressions/ import it too.
sys.path.insert(0, os.path.dirname(__file__))
