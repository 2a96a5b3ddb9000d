-- Argo CD health check for rollwise.dev/ProgressiveService.
-- Argo CD sets the live object as the global `obj` and reads {status, message} from the
-- returned table. Kept to Lua 5.1 (Argo CD embeds gopher-lua); tested with lua5.4.
local hs = {}

-- Every phase the operator writes; any other value means this script is older than it.
local healthOfPhase = {
  Pending = "Progressing",
  Migrating = "Progressing",
  Progressing = "Progressing",
  Promoting = "Progressing",
  RollingBack = "Progressing",
  Paused = "Suspended",
  Healthy = "Healthy",
  RolledBack = "Degraded",
  MigrationFailed = "Degraded",
  Degraded = "Degraded",
}

local function findCondition(status, conditionType)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

-- Argo CD decodes JSON numbers as floats: print 25, not 25.0.
local function number(value)
  if type(value) == "number" and math.floor(value) == value then
    return string.format("%d", value)
  end
  return tostring(value)
end

local function describe(status)
  local message = tostring(status.phase)
  if status.canaryWeight ~= nil then
    message = message .. ": canary weight " .. number(status.canaryWeight) .. "%"
  end
  if status.abort ~= nil and status.abort.message ~= nil and status.abort.message ~= "" then
    message = message .. "; aborted: " .. status.abort.message
  end
  return message
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator: no status yet"
  return hs
end
-- Status written for an older spec says nothing about the current one.
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. number(generation)
  return hs
end

local health = healthOfPhase[status.phase]
local ready = findCondition(status, "Ready")
local stalled = findCondition(status, "Stalled")
hs.message = describe(status)
if stalled ~= nil and stalled.status == "True" and stalled.reason == "InvalidSpec" then
  -- The spec names an object that does not exist: nothing of the new revision runs until it
  -- does (the phase stays Pending); kstatus calls this Failed, so does Argo CD.
  hs.status = "Degraded"
  hs.message = hs.message .. "; InvalidSpec: " .. tostring(stalled.message)
elseif health == nil then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(status.phase) .. ": update the rollwise health check"
elseif health == "Healthy" and (ready == nil or ready.status ~= "True") then
  -- Phase Healthy but not Ready yet (pods still starting after a scale): wait.
  hs.status = "Progressing"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = hs.message .. "; not Ready: " .. ready.message
  else
    hs.message = hs.message .. "; not Ready yet"
  end
else
  hs.status = health
  local degraded = findCondition(status, "Degraded")
  if health == "Degraded" and status.abort == nil and ready ~= nil and ready.message ~= nil then
    -- A Degraded phase without an abort says why through its Ready condition.
    hs.message = hs.message .. "; " .. ready.message
  elseif health ~= "Degraded" and degraded ~= nil and degraded.status == "True" then
    -- An action failing mid-rollout (retried with backoff): the phase stands, the error shows.
    hs.message = hs.message .. "; " .. tostring(degraded.reason) .. ": " .. tostring(degraded.message)
  end
end
return hs
