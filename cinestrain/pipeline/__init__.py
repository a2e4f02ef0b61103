"""One analysis, end to end: the job contract (:mod:`pipeline.job`) and the run that
reads a stack, calls the heart analysis and the motion model, and writes the results
(:mod:`pipeline.run`). Shared by ``cinestrain analyze`` and the node's worker."""
