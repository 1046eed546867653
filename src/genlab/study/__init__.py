"""`genlab study`: every experiment of the reference study (and genlab's recipe beside it) as one
resumable pipeline of ordinary runs in one folder, and the report that sets genlab's numbers beside
the study's.

    plan.py      the stages (what each experiment trains and evaluates) and the profiles (cpu, full, tiny)
    pipeline.py  runs the stages: skips finished ones, resumes interrupted ones, shows the ETA
    report.py    study.json and study.html from the run directories (reads numbers, trains nothing)
"""
