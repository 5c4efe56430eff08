"""allocopt: share out scarce accelerator time among peer-reviewed proposals.

Layers, each calling only the ones above it in this list:
    round, options, files, terms   the input model and its exact derived terms
    model                          the CP-SAT model (the only OR-Tools import)
    solution, outcome, solve       the solution file and how it is built
    verify, report, diagnose       analysis of rounds and solutions
    cli                            the command line
"""

from allocopt.files import read_round
from allocopt.options import SolveOptions
from allocopt.round import Round
from allocopt.solution import Solution
from allocopt.solve import solve

__all__ = ["Round", "Solution", "SolveOptions", "read_round", "solve"]
