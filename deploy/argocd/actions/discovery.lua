-- Argo CD resource actions for rollwise's kinds (ProgressiveService, ReleaseTrain,
-- FleetRollout): which of promote, promote-full, abort and retry make sense in the phase.
-- Every action writes the rollwise.dev/request annotation, as `kubectl rollwise` does.
local actions = {}
local phase = ""
if obj.status ~= nil and obj.status.phase ~= nil then
  phase = obj.status.phase
end
local moving = {
  Pending = true, Migrating = true, Progressing = true, Paused = true, Promoting = true,
  Soaking = true, WaitingForApproval = true, Frozen = true,
}
local failed = {
  RolledBack = true, MigrationFailed = true, Degraded = true, Failed = true, Halted = true,
}
local isService = obj.kind == "ProgressiveService"
actions["promote"] = {["disabled"] = not moving[phase]}
actions["abort"] = {["disabled"] = not moving[phase]}
-- A FleetRollout is retried by applying its version again, not by a request.
actions["retry"] = {["disabled"] = not failed[phase] or obj.kind == "FleetRollout"}
if isService then
  actions["promote-full"] = {["disabled"] = not moving[phase]}
end
return actions
