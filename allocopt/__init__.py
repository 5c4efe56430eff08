"""allocopt: share out scarce accelerator time among peer-reviewed proposals.

Layers, each calling only the ones above it in this list:
    round, options, files, terms   the input model and its exact derived terms
    model                          the CP-SAT model (the only OR-Tools import)
    solution, outcome, solve       the solution file and how it is built
    verify, report, diagnose       analysis of rounds and solutions
    cli                            the command line (started by launch)

Import from the module that does the job (``from allocopt.solve import solve``):
this file imports nothing, so the command starts, and can be interrupted, before
the solver loads.
"""
