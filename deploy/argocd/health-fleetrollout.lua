-- Argo CD health check for rollwise.dev/FleetRollout (`obj` in, {status, message} out).
-- Kept to Lua 5.1 (Argo CD embeds gopher-lua); tested with lua5.4.
local hs = {}

local healthOfPhase = {
  Pending = "Progressing",
  Progressing = "Progressing",
  Soaking = "Progressing",
  RollingBack = "Progressing",
  WaitingForApproval = "Suspended",
  Succeeded = "Healthy",
  Failed = "Degraded",
  RolledBack = "Degraded",
  Invalid = "Degraded",
}

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet hub: no status yet"
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet hub to observe generation " .. string.format("%d", generation)
  return hs
end
local health = healthOfPhase[status.phase]
if health == nil then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(status.phase) .. ": update the rollwise health check"
  return hs
end
hs.status = health
hs.message = tostring(status.phase)
if status.currentWave ~= nil then
  hs.message = hs.message .. " (wave " .. tostring(status.currentWave) .. ")"
end
if status.message ~= nil and status.message ~= "" then
  hs.message = hs.message .. ": " .. status.message
end
return hs
