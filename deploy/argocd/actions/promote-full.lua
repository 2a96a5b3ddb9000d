-- Argo CD resource action "promote-full": the rollwise.dev/request annotation, as
-- `kubectl rollwise promote --full` writes it; the operator acts once per id and records "by".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-promote-full-" .. os.date("!%Y%m%dT%H%M%SZ")
obj.metadata.annotations["rollwise.dev/request"] =
  '{"action": "promote", "id": "' .. id .. '", "by": "argocd (resource action promote-full)", "full": true}'
return obj
