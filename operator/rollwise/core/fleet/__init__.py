"""The fleet room: one FleetRollout's next step, from its spec, its status and what the hub saw
of each member cluster's ProgressiveService. Pure: no I/O, the clock is an argument.

The hub never runs a canary itself. It patches a member's ProgressiveService to the version
(and container changes), and the member's own rollwise migrates, canaries, analyses and
promotes or rolls back. The hub reads the outcome from the member's status.

Crash safety. Before the first patch of a member, a status write records the member's spec as
it was (`previous`) with phase Patching; the patch is written only after that. A restarted hub
re-observes: a member whose spec already asks for the version is not patched again (and
re-patching the same spec would change nothing in the member: no new generation, no new
revision, so no second migration). The outcome is judged only from a member status whose
observedGeneration reached the patched generation, never from the status before the patch.
"""
