-- Argo CD health assessment for artpulse.io/ArtPulseModel, laid out as Argo CD's own
-- resource_customizations/<group>/<kind>/health.lua (tests: health_test.yaml + testdata/).
-- Installed as argocd-cm key `resource.customizations.health.artpulse.io_ArtPulseModel`
-- (manifests/argocd/kustomization.yaml; manifests/README.md has the Helm and operator forms).
-- Argo CD sets `obj` to the live resource; we return
-- {status = Healthy|Progressing|Degraded|Suspended, message = ...}.
-- Only the base and table libraries are used: argocd-cm scripts run without string/math
-- unless `resource.customizations.useOpenLibs.artpulse.io_ArtPulseModel` is "true".
--
-- Order of decisions:
--   1. no status, or status older than the spec (observedGeneration < generation):
--      Progressing, the operator has not acted on the latest spec yet;
--   2. a True Degraded condition: Degraded, whatever the phase says;
--   3. the phase: Stable -> Healthy (Progressing while Ready is False), Paused -> Suspended,
--      Pending/Progressing/Shadowing/Promoting -> Progressing,
--      RolledBack/Degraded/Failed -> Degraded, anything else -> Unknown.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(status)
  local parts = {}
  if status.stable ~= nil and status.stable.version ~= nil then
    table.insert(parts, "stable v" .. tostring(status.stable.version))
  end
  if status.candidate ~= nil and status.candidate.version ~= nil then
    local text = "candidate v" .. tostring(status.candidate.version)
    if status.canaryWeight ~= nil then
      text = text .. " at " .. tostring(status.canaryWeight) .. "%"
    end
    table.insert(parts, text)
  end
  return table.concat(parts, ", ")
end

local function with_reason(text, status, cond)
  local detail = nil
  if cond ~= nil and cond.message ~= nil and cond.message ~= "" then
    detail = cond.message
  elseif status.lastRollout ~= nil and status.lastRollout.reason ~= nil and status.lastRollout.reason ~= "" then
    detail = status.lastRollout.reason
  elseif status.analysis ~= nil and status.analysis.message ~= nil and status.analysis.message ~= "" then
    detail = status.analysis.message
  elseif status.message ~= nil and status.message ~= "" then
    detail = status.message
  end
  local summary = describe(status)
  if summary ~= "" then
    text = text .. " (" .. summary .. ")"
  end
  if detail ~= nil then
    text = text .. ": " .. detail
  end
  return text
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation or nil
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = with_reason(phase, status, degraded)
  return hs
end

if phase == "Stable" then
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.status == "False" then
    hs.status = "Progressing"
    hs.message = with_reason("Stable, waiting for the workloads to be ready", status, ready)
  else
    hs.status = "Healthy"
    hs.message = with_reason("Stable", status, nil)
  end
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = with_reason("Paused", status, nil)
elseif phase == "Pending" or phase == "Progressing" or phase == "Shadowing" or phase == "Promoting" then
  hs.status = "Progressing"
  hs.message = with_reason(phase, status, condition(status, "Progressing"))
elseif phase == "RolledBack" or phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = with_reason(phase, status, degraded)
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
