import os
import sys

# fakes.py and the scripts/ beside it; the distributed examples for the compile tests.
HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "distributed"))
