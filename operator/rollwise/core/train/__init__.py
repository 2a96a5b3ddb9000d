"""The ReleaseTrain room: which members start, wait, halt or roll back. Pure.

`decide.decide_train(spec, status, observed, now)` reads the train's spec, the status its last pass
wrote, what each member ProgressiveService reports, and the time, and returns a TrainPlan: the
next status (whose `members[].release` is what each member rolls out), Events, the requests to
forward to members (a train-level promote), and when to look again.

One run per generation of the spec: a new generation (a new version set) starts a new run.
Within a run a member starts once every member it comes `after` is promoted (or already ran its
version), at most `maxConcurrent` at a time, and never while a freeze window is open. A member
is released by setting its release; it is promoted once its ProgressiveService is Healthy with
the release's revision as stable, failed once that revision was rolled back. A failure (or an
abort) halts the run: waiting members are never started, members in flight get their previous
release back (their canary is superseded), and under `RollbackPromoted` the promoted members
get theirs back too, one at a time, the last promoted first. Rollbacks ignore freeze windows:
a freeze holds new versions, not the way back to a known one.
"""
