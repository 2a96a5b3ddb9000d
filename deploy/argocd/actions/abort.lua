-- Argo CD resource action "abort": the rollwise.dev/request annotation, as
-- `kubectl rollwise abort` writes it; the operator acts once per id and records "by".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-abort-" .. os.date("!%Y%m%dT%H%M%SZ")
obj.metadata.annotations["rollwise.dev/request"] =
  '{"action": "abort", "id": "' .. id .. '", "by": "argocd (resource action abort)"}'
return obj
