-- Argo CD resource action "retry": the rollwise.dev/request annotation, as
-- `kubectl rollwise retry` writes it; the operator acts once per id and records "by".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-retry-" .. os.date("!%Y%m%dT%H%M%SZ")
obj.metadata.annotations["rollwise.dev/request"] =
  '{"action": "retry", "id": "' .. id .. '", "by": "argocd (resource action retry)"}'
return obj
